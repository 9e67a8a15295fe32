/* tools/junit.c — the JUnit XML writer of junit.h: one <testsuite> per check-suite run, one
 * <testcase> per case, XML-escaped text. The format followed is the common subset that CI
 * test reporters read (testsuites/testsuite/testcase with failure and error children; the
 * attributes tests, failures, errors, name, classname). Layer: tools CLI. */
#include <stdio.h>
#include <string.h>

#include "junit.h"
#include "svg.h"

static const char *string_of(const cJSON *o, const char *key)
{
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(s) ? s->valuestring : "";
}

/* A number of fm_check_report_to_json: a number, or "nan"/"inf" as a string. */
static void print_value(FILE *f, const cJSON *v)
{
    if (cJSON_IsNumber(v)) fprintf(f, "%.6g", v->valuedouble);
    else if (cJSON_IsString(v)) xml_escaped(f, v->valuestring);
    else fputs("-", f);
}

/* The <failure> of a failing case: the first failing tensor's reason, then every tensor. */
static void write_failure(FILE *f, const cJSON *report)
{
    const cJSON *tensors = cJSON_GetObjectItemCaseSensitive(report, "tensors"), *t;
    const char *why = "failed the pass rule";
    cJSON_ArrayForEach(t, tensors) {
        if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(t, "pass"))) {
            why = string_of(t, "why");
            break;
        }
    }
    fputs("      <failure type=\"pass-rule\" message=\"", f);
    xml_escaped(f, why);
    fputs("\">", f);
    cJSON_ArrayForEach(t, tensors) {
        xml_escaped(f, t->string);
        fputs(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(t, "pass")) ? " pass" : " FAIL", f);
        fputs(": max_abs ", f);
        print_value(f, cJSON_GetObjectItemCaseSensitive(t, "max_abs"));
        fputs(" bound ", f);
        print_value(f, cJSON_GetObjectItemCaseSensitive(t, "bound"));
        const char *w = string_of(t, "why");
        if (*w) {
            fputs(" (", f);
            xml_escaped(f, w);
            fputs(")", f);
        }
        fputs("\n", f);
    }
    fputs("</failure>\n", f);
}

int junit_write_suite(const char *path, const cJSON *doc)
{
    const cJSON *cases = cJSON_GetObjectItemCaseSensitive(doc, "cases"), *c;
    int tests = 0, failures = 0, errors = 0;
    cJSON_ArrayForEach(c, cases) {
        const char *v = string_of(c, "verdict");
        tests++;
        failures += strcmp(v, "fail") == 0;
        errors += strcmp(v, "invalid") == 0;
    }
    FILE *f = fopen(path, "w");
    if (!f) return 0;
    const char *suite = string_of(doc, "suite");
    fprintf(f, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    fprintf(f, "<testsuites tests=\"%d\" failures=\"%d\" errors=\"%d\">\n", tests, failures,
            errors);
    fputs("  <testsuite name=\"flashmask check-suite ", f);
    xml_escaped(f, suite);
    fprintf(f, "\" tests=\"%d\" failures=\"%d\" errors=\"%d\" skipped=\"0\">\n", tests, failures,
            errors);
    cJSON_ArrayForEach(c, cases) {
        const char *v = string_of(c, "verdict");
        fputs("    <testcase classname=\"flashmask.suite\" name=\"", f);
        xml_escaped(f, string_of(c, "name"));
        if (strcmp(v, "pass") == 0) {
            fputs("\"/>\n", f);
            continue;
        }
        fputs("\">\n", f);
        if (strcmp(v, "fail") == 0) {
            write_failure(f, cJSON_GetObjectItemCaseSensitive(c, "report"));
        } else {
            fputs("      <error type=\"invalid\" message=\"", f);
            xml_escaped(f, string_of(c, "error"));
            fputs("\"/>\n", f);
        }
        fputs("    </testcase>\n", f);
    }
    fputs("  </testsuite>\n</testsuites>\n", f);
    int bad = ferror(f);
    return fclose(f) == 0 && !bad;
}
