/* cuda/options.c — fm_kernel_options as text: the spec the CLI's `--kernel`, Python's `kernel=`
 * and the benchmark pass ("auto", "wgmma", "fwd=mma,bwd=wgmma,wgs=1,deterministic", ...), read
 * and written back. Plain C, built with or without CUDA so that a spec is checked everywhere;
 * what the options mean for a call is cuda/heuristics.cu's. Layer: cuda <- core.
 */
#include <stdio.h>
#include <string.h>

#include "flashmask/cuda.h"
#include "fm_internal.h"

/* fm_kernel_choice names; "pingpong" and "wide" only after fwd= (they are forward kernels),
 * "pipelined" only after bwd= (a backward kernel) */
static const char *const choice_names[] = {"auto", "mma", "wgmma", "pingpong", "wide",
                                           "pipelined"};
enum { N_CHOICES = 6 };
static const char *const shape_names[] = {"auto", "8x1", "4x2", "8x2"};

/* Whether choice v can follow fwd= (forward) or bwd= */
static int choice_for_pass(int v, int forward)
{
    if (v < 0) return 0;
    if (v <= FM_KERNEL_WGMMA) return 1;
    return forward ? v == FM_KERNEL_PINGPONG || v == FM_KERNEL_WIDE : v == FM_KERNEL_PIPELINED;
}

void fm_kernel_options_default(fm_kernel_options *o)
{
    memset(o, 0, sizeof *o);
}

int fm_kernel_options_is_default(const fm_kernel_options *o)
{
    return !o || (!o->forward && !o->backward && !o->fwd_shape && !o->bwd_warpgroups &&
                  !o->deterministic);
}

/* index of `value` (len bytes) in names[0..n), or -1 */
static int lookup(const char *const *names, int n, const char *value, size_t len)
{
    for (int i = 0; i < n; i++)
        if (strlen(names[i]) == len && strncmp(names[i], value, len) == 0) return i;
    return -1;
}

static fm_status parse_item(const char *item, size_t len, fm_kernel_options *o)
{
    const char *eq = memchr(item, '=', len);
    const size_t klen = eq ? (size_t)(eq - item) : len;
    const char *value = eq ? eq + 1 : NULL;
    const size_t vlen = eq ? len - klen - 1 : 0;
    int v;
    if (!eq) {
        if (klen == 13 && !strncmp(item, "deterministic", 13)) return o->deterministic = 1, FM_OK;
        if ((v = lookup(choice_names, 3, item, klen)) >= 0)
            return o->forward = o->backward = v, FM_OK;
    } else if ((klen == 3 && !strncmp(item, "fwd", 3)) || (klen == 3 && !strncmp(item, "bwd", 3))) {
        if (choice_for_pass(v = lookup(choice_names, N_CHOICES, value, vlen), item[0] == 'f')) {
            *(item[0] == 'f' ? &o->forward : &o->backward) = v;
            return FM_OK;
        }
    } else if (klen == 5 && !strncmp(item, "shape", 5)) {
        if ((v = lookup(shape_names, 4, value, vlen)) >= 0) return o->fwd_shape = v, FM_OK;
    } else if (klen == 3 && !strncmp(item, "wgs", 3)) {
        if (vlen == 1 && (value[0] == '1' || value[0] == '2'))
            return o->bwd_warpgroups = value[0] - '0', FM_OK;
    }
    return fm_fail(FM_ERR_INVALID,
                   "kernel options: cannot read '%.*s' (expected auto, mma, wgmma, "
                   "fwd=auto|mma|wgmma|pingpong|wide, bwd=auto|mma|wgmma|pipelined, "
                   "shape=8x1|4x2|8x2, wgs=1|2 or deterministic, comma-separated)",
                   (int)len, item);
}

fm_status fm_kernel_options_parse(const char *spec, fm_kernel_options *o)
{
    fm_clear_error();
    if (!spec || !o) return fm_fail(FM_ERR_INVALID, "kernel options: NULL argument");
    fm_kernel_options r;
    fm_kernel_options_default(&r);
    for (const char *s = spec;;) {
        const char *comma = strchr(s, ',');
        const size_t len = comma ? (size_t)(comma - s) : strlen(s);
        fm_status st = parse_item(s, len, &r);
        if (st != FM_OK) return st;
        if (!comma) break;
        s = comma + 1;
    }
    *o = r;
    return FM_OK;
}

void fm_kernel_options_format(const fm_kernel_options *o, char *buf, size_t len)
{
    if (!buf || !len) return;
    if (fm_kernel_options_is_default(o)) {
        snprintf(buf, len, "auto");
        return;
    }
    size_t n = 0;
    buf[0] = '\0';
#define FM_APPEND(...)                                                                        \
    do {                                                                                      \
        if (n < len) {                                                                        \
            int w = snprintf(buf + n, len - n, "%s", n ? "," : "");                           \
            if (w > 0) n += (size_t)w;                                                        \
            if (n < len && (w = snprintf(buf + n, len - n, __VA_ARGS__)) > 0) n += (size_t)w; \
        }                                                                                     \
    } while (0)
    if (o->forward && choice_for_pass(o->forward, 1) && o->forward < N_CHOICES)
        FM_APPEND("fwd=%s", choice_names[o->forward]);
    if (o->backward && choice_for_pass(o->backward, 0) && o->backward < N_CHOICES)
        FM_APPEND("bwd=%s", choice_names[o->backward]);
    if ((unsigned)o->fwd_shape < 4 && o->fwd_shape)
        FM_APPEND("shape=%s", shape_names[o->fwd_shape]);
    if (o->bwd_warpgroups) FM_APPEND("wgs=%d", (int)o->bwd_warpgroups);
    if (o->deterministic) FM_APPEND("deterministic");
#undef FM_APPEND
}
