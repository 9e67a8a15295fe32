/* io/params_json.c — mask family parameters (fm_mask_params) to and from JSON, through cJSON,
 * and the "key=value" overrides of `flashmask gen --param`. Layer: io <- masks <- core.
 *
 * The mask family table (masks/families.c, fm_family_fields) says which fields each family has;
 * to_json, from_json and set all walk it, so the JSON keys, the CLI keys and the struct field
 * names are the same words, and a new family needs nothing here.
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "flashmask/io.h"
#include "io_internal.h"
#include "fm_internal.h"

/* Integers are carried as JSON numbers (doubles): only |v| <= 2^53 is exact. */
#define JSON_INT_MAX 9007199254740992.0

/* The fields of a family come from its row in the mask family table (fm_family_fields). */
typedef fm_param_field param_field;

#define AT(p, off, type) ((type *)((char *)(p) + (off)))

static int n_fields_of(fm_family f)
{
    int n;
    fm_family_fields(f, &n);
    return n;
}

/* ---------------------------------------------------------------- to JSON */

/* A JSON number for an integer parameter, refused outside [0, 2^53] (JSON numbers are doubles:
 * a larger value would not come back exactly). */
static fm_status int_item(double v, const char *key, cJSON **out)
{
    *out = NULL;
    if (!(v >= 0.0 && v <= JSON_INT_MAX))
        return fm_fail(FM_ERR_INVALID, "mask_params: '%s' = %.17g is outside [0, 2^53], which "
                       "case.json cannot hold exactly", key, v);
    *out = cJSON_CreateNumber(v);
    return *out ? FM_OK : fm_fail(FM_ERR_NOMEM, "mask_params: out of memory building JSON");
}

fm_status fm_io_params_to_cjson(const fm_mask_params *p, cJSON **out)
{
    *out = NULL;
    if ((unsigned)p->family >= FM_FAMILY_COUNT)
        return fm_fail(FM_ERR_INVALID, "mask_params: unknown family %d", (int)p->family);
    cJSON *obj = cJSON_CreateObject();
    if (!obj) return fm_fail(FM_ERR_NOMEM, "mask_params: out of memory building JSON");
    fm_status st = FM_OK;
    for (int i = 0; i < n_fields_of(p->family) && st == FM_OK; i++) {
        const param_field *f = &fm_family_fields(p->family, NULL)[i];
        cJSON *v = NULL;
        if (f->kind == FM_PARAM_I64) {
            st = int_item((double)*AT(p, f->value_offset, const int64_t), f->key, &v);
        } else if (f->kind == FM_PARAM_U64) {
            uint64_t u = *AT(p, f->value_offset, const uint64_t);
            if (u > (1ull << 53)) /* checked before the conversion to double rounds it */
                st = fm_fail(FM_ERR_INVALID, "mask_params: '%s' = %llu is outside [0, 2^53], "
                             "which case.json cannot hold exactly", f->key,
                             (unsigned long long)u);
            else
                st = int_item((double)u, f->key, &v);
        } else {
            int64_t n = *AT(p, f->count_offset, const int64_t);
            const int64_t *xs = *AT(p, f->value_offset, int64_t *const);
            if (n > 0 && !xs) st = fm_fail(FM_ERR_INVALID, "mask_params: '%s' is NULL", f->key);
            if (st == FM_OK && !(v = cJSON_CreateArray()))
                st = fm_fail(FM_ERR_NOMEM, "mask_params: out of memory building JSON");
            for (int64_t k = 0; st == FM_OK && k < n; k++) {
                cJSON *e;
                st = int_item((double)xs[k], f->key, &e);
                if (st == FM_OK && !cJSON_AddItemToArray(v, e)) {
                    cJSON_Delete(e);
                    st = fm_fail(FM_ERR_NOMEM, "mask_params: out of memory building JSON");
                }
            }
        }
        if (st == FM_OK && !cJSON_AddItemToObject(obj, f->key, v))
            st = fm_fail(FM_ERR_NOMEM, "mask_params: out of memory building JSON");
        if (st != FM_OK) cJSON_Delete(v);
    }
    if (st != FM_OK) {
        cJSON_Delete(obj);
        return st;
    }
    *out = obj;
    return FM_OK;
}

fm_status fm_io_json_exact(cJSON *node)
{
    for (; node; node = node->next) {
        if (cJSON_IsNumber(node)) {
            /* integers in [-2^53, 2^53] exactly as integers, anything else with 17 digits */
            char text[40];
            double d = node->valuedouble;
            if (d == floor(d) && fabs(d) <= JSON_INT_MAX) snprintf(text, sizeof text, "%.0f", d);
            else snprintf(text, sizeof text, "%.17g", d);
            char *copy = malloc(strlen(text) + 1);
            if (!copy) return fm_fail(FM_ERR_NOMEM, "JSON: out of memory");
            memcpy(copy, text, strlen(text) + 1);
            node->type = cJSON_Raw; /* printed verbatim; cJSON_Delete frees valuestring */
            node->valuestring = copy;
        }
        fm_status st = fm_io_json_exact(node->child);
        if (st != FM_OK) return st;
    }
    return FM_OK;
}

fm_status fm_mask_params_to_json(const fm_mask_params *p, char **json)
{
    if (!json) return fm_fail(FM_ERR_INVALID, "mask_params to JSON: NULL output");
    *json = NULL;
    if (!p) return fm_fail(FM_ERR_INVALID, "mask_params to JSON: NULL params");
    cJSON *obj;
    fm_status st = fm_io_params_to_cjson(p, &obj);
    if (st == FM_OK) st = fm_io_json_exact(obj);
    if (st == FM_OK && !(*json = cJSON_PrintUnformatted(obj)))
        st = fm_fail(FM_ERR_NOMEM, "mask_params: out of memory printing JSON");
    cJSON_Delete(obj);
    return st;
}

/* ---------------------------------------------------------------- from JSON */

/* A JSON number that is an integer in [0, 2^53]. */
fm_status fm_io_json_count(const cJSON *v, const char *where, const char *key, int64_t *out)
{
    if (!cJSON_IsNumber(v))
        return fm_fail(FM_ERR_FORMAT, "%s: '%s' is not a number", where, key);
    double d = v->valuedouble;
    if (!(d >= 0.0 && d <= JSON_INT_MAX) || d != floor(d))
        return fm_fail(FM_ERR_FORMAT, "%s: '%s' = %.17g is not an integer in [0, 2^53]", where,
                       key, d);
    *out = (int64_t)d;
    return FM_OK;
}

static const param_field *find_field(fm_family f, const char *key)
{
    const param_field *fields = fm_family_fields(f, NULL);
    for (int i = 0; i < n_fields_of(f); i++)
        if (strcmp(fields[i].key, key) == 0) return &fields[i];
    return NULL;
}

/* The family's keys, for messages: "doc_lens, doc_prefix" or "(none)". */
static const char *family_keys(fm_family f, char *buf, size_t cap)
{
    buf[0] = '\0';
    size_t n = 0;
    for (int i = 0; i < n_fields_of(f) && n < cap; i++)
        n += (size_t)snprintf(buf + n, cap - n, "%s%s", i ? ", " : "",
                              fm_family_fields(f, NULL)[i].key);
    return n_fields_of(f) ? buf : "(none)";
}

fm_status fm_io_params_from_cjson(fm_mask_params *p, fm_family f, const cJSON *obj,
                                  const char *where)
{
    memset(p, 0, sizeof *p);
    if ((unsigned)f >= FM_FAMILY_COUNT)
        return fm_fail(FM_ERR_INVALID, "%s: unknown family %d", where, (int)f);
    p->family = f;
    char keys[160];
    if (!cJSON_IsObject(obj))
        return fm_fail(FM_ERR_FORMAT, "%s: mask_params is not a JSON object", where);

    /* every member must be a key of the family, at most once */
    for (const cJSON *m = obj->child; m; m = m->next) {
        if (!m->string || !find_field(f, m->string))
            return fm_fail(FM_ERR_FORMAT, "%s: '%s' is not a parameter of %s (its parameters: %s)",
                           where, m->string ? m->string : "?", fm_family_name(f),
                           family_keys(f, keys, sizeof keys));
        for (const cJSON *o = obj->child; o != m; o = o->next)
            if (strcmp(o->string, m->string) == 0)
                return fm_fail(FM_ERR_FORMAT, "%s: parameter '%s' appears twice", where,
                               m->string);
    }

    fm_status st = FM_OK;
    const char *count_owner[4] = {0}; /* the first list that set each shared count */
    size_t count_offsets[4] = {0};
    int n_counts = 0;
    for (int i = 0; i < n_fields_of(f) && st == FM_OK; i++) {
        const param_field *fd = &fm_family_fields(f, NULL)[i];
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, fd->key);
        if (!v) {
            st = fm_fail(FM_ERR_FORMAT, "%s: %s needs '%s' (its parameters: %s)", where,
                         fm_family_name(f), fd->key, family_keys(f, keys, sizeof keys));
            break;
        }
        int64_t x;
        if (fd->kind != FM_PARAM_LIST) {
            if ((st = fm_io_json_count(v, where, fd->key, &x)) != FM_OK) break;
            if (fd->kind == FM_PARAM_I64) *AT(p, fd->value_offset, int64_t) = x;
            else *AT(p, fd->value_offset, uint64_t) = (uint64_t)x;
            continue;
        }
        if (!cJSON_IsArray(v)) {
            st = fm_fail(FM_ERR_FORMAT, "%s: '%s' is not a list of integers", where, fd->key);
            break;
        }
        int64_t n = cJSON_GetArraySize(v);
        /* lists sharing a count must agree with the first one that set it */
        int shared = -1;
        for (int c = 0; c < n_counts; c++)
            if (count_offsets[c] == fd->count_offset) shared = c;
        if (shared >= 0 && *AT(p, fd->count_offset, int64_t) != n) {
            st = fm_fail(FM_ERR_FORMAT, "%s: '%s' has %lld entries but '%s' has %lld; they "
                         "must have the same length", where, fd->key, (long long)n,
                         count_owner[shared], (long long)*AT(p, fd->count_offset, int64_t));
            break;
        }
        if (shared < 0 && n_counts < 4) {
            count_offsets[n_counts] = fd->count_offset;
            count_owner[n_counts++] = fd->key;
        }
        int64_t *xs = fm_alloc(n ? (size_t)n : 1, sizeof(int64_t), where);
        if (!xs) {
            st = FM_ERR_NOMEM;
            break;
        }
        *AT(p, fd->value_offset, int64_t *) = xs; /* owned by p from here on */
        *AT(p, fd->count_offset, int64_t) = n;
        int64_t k = 0;
        char item[64];
        for (const cJSON *e = v->child; e && st == FM_OK; e = e->next, k++) {
            snprintf(item, sizeof item, "%s[%lld]", fd->key, (long long)k);
            st = fm_io_json_count(e, where, item, &xs[k]);
        }
    }
    if (st != FM_OK) fm_mask_params_free(p);
    return st;
}

fm_status fm_mask_params_from_json(fm_mask_params *p, fm_family f, const char *json,
                                   const char *where)
{
    memset(p, 0, sizeof *p);
    if (!where) where = "mask_params";
    if (!json) return fm_fail(FM_ERR_INVALID, "%s: NULL JSON text", where);
    const char *end = NULL;
    cJSON *obj = cJSON_ParseWithOpts(json, &end, 1);
    if (!obj)
        return fm_fail(FM_ERR_FORMAT, "%s: invalid JSON near byte %lld", where,
                       (long long)(end ? end - json : 0));
    fm_status st = fm_io_params_from_cjson(p, f, obj, where);
    cJSON_Delete(obj);
    return st;
}

/* ---------------------------------------------------------------- key=value overrides */

/* "12" or "4,3,3" -> a JSON number or array (a list key always gets an array). */
static cJSON *parse_value(const char *key, const char *text, int want_list)
{
    cJSON *arr = want_list ? cJSON_CreateArray() : NULL;
    const char *s = text;
    for (;;) {
        char *end;
        errno = 0;
        if (*s < '0' || *s > '9') break; /* digits only: no sign, no spaces */
        unsigned long long v = strtoull(s, &end, 10);
        if (errno == ERANGE || (double)v > JSON_INT_MAX) break;
        cJSON *num = cJSON_CreateNumber((double)v);
        if (!want_list) {
            if (*end != '\0') {
                cJSON_Delete(num);
                break;
            }
            return num;
        }
        if (!num || !cJSON_AddItemToArray(arr, num)) {
            cJSON_Delete(num);
            break;
        }
        if (*end == '\0') return arr;
        if (*end != ',') break;
        s = end + 1;
    }
    cJSON_Delete(arr);
    fm_fail(FM_ERR_INVALID, "--param %s=%s: expected %s of integers in [0, 2^53]", key, text,
            want_list ? "a comma-separated list" : "one");
    return NULL;
}

fm_status fm_mask_params_apply(fm_mask_params *p, int n, const char *const *assignments)
{
    if (!p || (n > 0 && !assignments))
        return fm_fail(FM_ERR_INVALID, "--param: NULL params or assignments");
    if ((unsigned)p->family >= FM_FAMILY_COUNT)
        return fm_fail(FM_ERR_INVALID, "--param: unknown family %d", (int)p->family);
    /* Apply every assignment to the JSON form, then validate once with from_cjson, so that
     * lists sharing a length (doc_lens and doc_prefix) can both change in one call. */
    cJSON *obj;
    fm_status st = fm_io_params_to_cjson(p, &obj);
    if (st != FM_OK) return st;
    for (int i = 0; i < n && st == FM_OK; i++) {
        const char *a = assignments[i];
        const char *eq = a ? strchr(a, '=') : NULL;
        char key[64], keys[160];
        size_t klen = eq ? (size_t)(eq - a) : 0;
        if (!eq || klen == 0 || klen >= sizeof key) {
            st = fm_fail(FM_ERR_INVALID, "--param '%s': expected key=value", a ? a : "(null)");
            break;
        }
        memcpy(key, a, klen);
        key[klen] = '\0';
        const param_field *fd = find_field(p->family, key);
        if (!fd) {
            st = fm_fail(FM_ERR_INVALID, "--param %s: not a parameter of %s (its parameters: %s)",
                         key, fm_family_name(p->family),
                         family_keys(p->family, keys, sizeof keys));
            break;
        }
        cJSON *v = parse_value(key, eq + 1, fd->kind == FM_PARAM_LIST);
        if (!v) st = FM_ERR_INVALID;
        else cJSON_ReplaceItemInObjectCaseSensitive(obj, key, v);
    }
    fm_mask_params next;
    if (st == FM_OK) st = fm_io_params_from_cjson(&next, p->family, obj, "--param");
    cJSON_Delete(obj);
    if (st != FM_OK) return st;
    fm_mask_params_free(p);
    *p = next;
    return FM_OK;
}
