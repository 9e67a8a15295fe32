/* oracle/report_json.c — the check's report as JSON, for CI systems and scripts that read
 * verdicts rather than tables (`flashmask check --json`, `flashmask check-suite --json`).
 * Layer: oracle (cJSON, as io/ uses it).
 */
#include <math.h>
#include <stdlib.h>

#include <cjson/cJSON.h>

#include "flashmask/oracle.h"
#include "fm_internal.h"

/* JSON has no inf/nan: they become strings so that the file stays valid JSON. */
static void add_number(cJSON *obj, const char *key, double x)
{
    if (isfinite(x)) cJSON_AddNumberToObject(obj, key, x);
    else cJSON_AddStringToObject(obj, key, isnan(x) ? "nan" : x > 0 ? "inf" : "-inf");
}

fm_status fm_check_report_to_json(const fm_check_report *report, char **json)
{
    fm_clear_error();
    if (!report || !json) return fm_fail(FM_ERR_INVALID, "report to json: NULL argument");
    cJSON *root = cJSON_CreateObject();
    if (!root) return fm_fail(FM_ERR_NOMEM, "report to json: out of memory");
    cJSON_AddStringToObject(root, "dtype", fm_dtype_name(report->options.dtype));
    cJSON_AddStringToObject(root, "rule", fm_check_rule_name((fm_check_rule)report->options.rule));
    cJSON_AddBoolToObject(root, "forward_only", report->options.forward_only);
    cJSON_AddBoolToObject(root, "allow_fa2_inf_lse", report->options.allow_fa2_inf_lse);
    cJSON_AddBoolToObject(root, "naive", report->options.naive);
    cJSON_AddNumberToObject(root, "masked_rows", (double)report->masked_rows);
    cJSON_AddBoolToObject(root, "pass", report->pass);
    cJSON *tensors = cJSON_AddObjectToObject(root, "tensors");
    for (int i = 0; tensors && i < report->n_tensors; i++) {
        const fm_tensor_check *t = &report->tensor[i];
        cJSON *o = cJSON_AddObjectToObject(tensors, t->name);
        if (!o) break;
        add_number(o, "max_abs", t->max_abs);
        add_number(o, "mean_abs", t->mean_abs);
        add_number(o, "rel_fro", t->rel_fro);
        /* null where the derived rule left the naive computation out (oracle.h) */
        if (t->naive_computed) add_number(o, "naive_max_abs", t->naive_max_abs);
        else cJSON_AddNullToObject(o, "naive_max_abs");
        cJSON_AddBoolToObject(o, "naive_computed", t->naive_computed);
        add_number(o, "atol", t->atol);
        add_number(o, "bound", t->bound);
        add_number(o, "ratio", t->ratio);
        cJSON_AddNumberToObject(o, "nan_count", (double)t->nan_count);
        cJSON_AddNumberToObject(o, "masked_bad", (double)t->masked_bad);
        cJSON_AddBoolToObject(o, "pass", t->pass);
        cJSON_AddStringToObject(o, "why", t->why);
    }
    *json = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    if (!*json) return fm_fail(FM_ERR_NOMEM, "report to json: out of memory");
    return FM_OK;
}
