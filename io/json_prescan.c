/* io/json_prescan.c — a pass over case.json's text before cJSON builds its tree, for what cJSON
 * would accept silently but a case must not hold (io/case.c calls it). Layer: io.
 */
#include <string.h>

#include "fm_internal.h"
#include "io_internal.h"

/* What cJSON would accept silently but a case must not hold, found on the text before the
 * tree is built: a \\u0000 escape (cJSON cuts the string there, so "seed\\u0000junk" would
 * read as "seed"), an integer beyond 2^53 (2^53 + 1 would round to 2^53), and more values than
 * max_values. */
fm_status fm_io_json_prescan(const char *t, size_t n, const char *name, size_t max_values)
{
    size_t values = 0;
    for (size_t i = 0; i < n; i++) {
        char ch = t[i];
        if (ch == '"') { /* a string: escapes checked, nothing inside counts */
            values++;
            for (i++; i < n && t[i] != '"'; i++) {
                if (t[i] != '\\') continue;
                if (i + 5 < n && t[i + 1] == 'u' && strncmp(t + i + 2, "0000", 4) == 0)
                    return fm_fail(FM_ERR_FORMAT, "%s: a string holds \\u0000 at byte %zu (a NUL "
                                   "inside a key or value is refused)", name, i);
                i++; /* skip the escaped character */
            }
        } else if (ch == '-' || (ch >= '0' && ch <= '9')) {
            values++;
            size_t j = i + (ch == '-'), digits = 0;
            int integral = 1;
            while (j < n && t[j] >= '0' && t[j] <= '9') j++, digits++;
            if (j < n && (t[j] == '.' || t[j] == 'e' || t[j] == 'E')) integral = 0;
            while (j < n && strchr("0123456789.eE+-", t[j])) j++;
            /* an integer literal above 2^53 = 9007199254740992 (16 digits) would be read as
             * a neighbouring double: 2^53 + 1 as 2^53, which every count check accepts. Other
             * large numbers (1e17) read as themselves and the field checks refuse them. */
            int above = integral && (digits > 16 || (digits == 16 && strncmp(t + i + (ch == '-'),
                                                     "9007199254740992", 16) > 0));
            if (above)
                return fm_fail(FM_ERR_FORMAT, "%s: the integer %.*s%s at byte %zu is beyond 2^53 "
                               "(JSON numbers are doubles: it would not be read exactly)",
                               name, (int)(j - i < 40 ? j - i : 40), t + i,
                               j - i > 40 ? "..." : "", i);
            i = j - 1;
        } else if (ch == '[' || ch == '{' || ch == 't' || ch == 'f' || ch == 'n') {
            values++;
            if (ch != '[' && ch != '{')
                while (i + 1 < n && t[i + 1] >= 'a' && t[i + 1] <= 'z') i++;
        }
        if (values > max_values)
            return fm_fail(FM_ERR_FORMAT, "%s: more than %zu JSON values; a case.json is small "
                           "(its tensors live in .npy files)", name, max_values);
    }
    return FM_OK;
}

