/* tools/junit.h — JUnit XML for CI dashboards (GitHub Actions test reporters, Jenkins, GitLab):
 * `flashmask check-suite --junit FILE` hands its JSON verdict document to junit_write_suite.
 * Layer: tools CLI (cJSON only). */
#ifndef FM_TOOLS_JUNIT_H
#define FM_TOOLS_JUNIT_H

#include <cjson/cJSON.h>

/* Writes one <testsuite> with a <testcase> per entry of doc's "cases" array ({"name",
 * "verdict": "pass" | "fail" | "invalid", "error", "report": fm_check_report_to_json's
 * object}): a failing case gets a <failure> whose message is the first failing tensor's reason
 * and whose text lists every tensor's max_abs against its bound; an invalid one (results
 * missing or unreadable) an <error>. Returns 1 on success, 0 when the file cannot be written. */
int junit_write_suite(const char *path, const cJSON *doc);

#endif
