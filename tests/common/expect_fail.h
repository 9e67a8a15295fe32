/* tests/common/expect_fail.h — the assertion every suite makes of bad input: a call must fail
 * with a given status and a message that names the offending value (on failure it prints the
 * call, both statuses and the message). Layer: tests (public API and cmocka only).
 */
#ifndef FM_TESTS_EXPECT_FAIL_H
#define FM_TESTS_EXPECT_FAIL_H

#include <string.h>

#include "flashmask.h"

/* The call must fail with `want` and fm_last_error() must contain `text`. Include after
 * <cmocka.h> (fail_msg). */
#define EXPECT_FAIL(call, want, text)                                                        \
    do {                                                                                     \
        fm_status got_ = (call);                                                             \
        if (got_ != (want) || !strstr(fm_last_error(), (text)))                              \
            fail_msg("%s\n  returned %d (%s), expected %d (%s) with message containing "     \
                     "'%s'\n  message: %s",                                                  \
                     #call, (int)got_, fm_status_string(got_), (int)(want),                  \
                     fm_status_string(want), (text), fm_last_error());                       \
    } while (0)

#endif
