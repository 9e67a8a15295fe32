/* fuzz/fuzz_case_dir.c — libFuzzer target for loading whole case directories (io/case.c):
 * a valid small case is written once into a temporary directory; each input replaces one of its
 * files (the first byte picks case.json, mask.npy, q.npy, k.npy, do.npy or lse.npy; the rest is
 * the file's new content) and fm_case_load must either refuse with a message or return a case
 * whose problem validates against its mask and whose inputs are finite. The file is restored
 * after each run, so every input starts from the same valid case. This is where the checks
 * between files live (case.json sizes vs .npy shapes, Paddle's C-column masks with the case's
 * causal, finiteness), which fuzz_npy and fuzz_case_json see only one file at a time. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "flashmask.h"
#include "flashmask/io.h"

static char dir[64];
static const char *const files[] = {"case.json", "mask.npy", "q.npy", "k.npy", "do.npy",
                                    "lse.npy"};
enum { N_FILES = sizeof files / sizeof files[0] };
static unsigned char *original[N_FILES];
static size_t original_size[N_FILES];

static void write_file(const char *name, const void *bytes, size_t n)
{
    char path[128];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(bytes, 1, n, f) != n) abort();
    fclose(f);
}

static void remove_dir(void)
{
    char path[128];
    for (int i = 0; i < N_FILES + 5; i++) {
        static const char *const all[] = {"case.json", "mask.npy", "q.npy",  "k.npy",
                                          "do.npy",    "lse.npy",  "v.npy",  "out.npy",
                                          "dq.npy",    "dk.npy",   "dv.npy"};
        snprintf(path, sizeof path, "%s/%s", dir, all[i]);
        remove(path);
    }
    rmdir(dir);
}

/* B=1, Hq=2, Hk=1, Hm=1, Sq=4, Sk=5, D=2, causal_document, float16 inputs, expected outputs. */
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    snprintf(dir, sizeof dir, "/tmp/fm-fuzz-case-XXXXXX");
    if (!mkdtemp(dir)) abort();
    rmdir(dir); /* fm_case_save wants to create it */
    fm_case c;
    fm_case_init(&c);
    fm_problem_init(&c.problem, 1, 2, 1, 4, 5, 2);
    c.problem.dtype = FM_FLOAT16;
    const char *assign[] = {"doc_lens=2,3"};
    if (fm_mask_params_default(&c.mask_params, FM_FAMILY_CAUSAL_DOCUMENT, 5) != FM_OK ||
        fm_mask_params_apply(&c.mask_params, 1, assign) != FM_OK ||
        fm_mask_build(&c.mask, &c.mask_params, 1, 1, 4, 5, FM_CAUSAL_BOTTOM_RIGHT) != FM_OK)
        abort();
    c.has_params = 1;
    snprintf(c.mask_kind, sizeof c.mask_kind, "causal_document");
    size_t nq = 16, nkv = 10, nl = 8;
    double **bufs[9] = {&c.q, &c.k, &c.v, &c.dout, &c.out, &c.lse, &c.dq, &c.dk, &c.dv};
    size_t sizes[9] = {nq, nkv, nkv, nq, nq, nl, nq, nkv, nkv};
    fm_rng rng;
    fm_rng_seed(&rng, 5);
    for (int t = 0; t < 9; t++) {
        if (!(*bufs[t] = calloc(sizes[t], sizeof(double)))) abort();
        if (t < 4)
            for (size_t i = 0; i < sizes[t]; i++)
                (*bufs[t])[i] = fm_round_to_dtype(fm_rng_normal(&rng), FM_FLOAT16);
    }
    fm_tensors t = {c.q, c.k, c.v, c.dout, c.out, c.lse, c.dq, c.dk, c.dv};
    if (fm_forward(FM_IMPL_REFERENCE, &c.problem, &c.mask, &t) != FM_OK ||
        fm_backward(FM_IMPL_REFERENCE, &c.problem, &c.mask, &t) != FM_OK ||
        fm_case_save(dir, &c) != FM_OK)
        abort();
    fm_case_free(&c);
    for (int i = 0; i < N_FILES; i++) { /* keep the pristine bytes to restore */
        char path[128];
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        FILE *f = fopen(path, "rb");
        if (!f) abort();
        original[i] = malloc(1 << 16);
        original_size[i] = fread(original[i], 1, 1 << 16, f);
        fclose(f);
    }
    atexit(remove_dir);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    int which = data[0] % N_FILES;
    write_file(files[which], data + 1, size - 1);
    fm_case c;
    fm_status st = fm_case_load(dir, &c);
    if (st == FM_OK) {
        /* whatever was accepted is a consistent, finite case */
        if (fm_problem_validate(&c.problem, &c.mask) != FM_OK) abort();
        size_t nq = fm_problem_q_elems(&c.problem), nkv = fm_problem_kv_elems(&c.problem);
        for (size_t i = 0; i < nq; i++)
            if (!isfinite(c.q[i]) || !isfinite(c.dout[i])) abort();
        for (size_t i = 0; i < nkv; i++)
            if (!isfinite(c.k[i]) || !isfinite(c.v[i])) abort();
        if (c.lse)
            for (size_t i = 0; i < fm_problem_lse_elems(&c.problem); i++)
                if (isnan(c.lse[i]) || c.lse[i] == INFINITY) abort();
        fm_case_free(&c);
    } else if (fm_last_error()[0] == '\0') {
        abort();
    }
    write_file(files[which], original[which], original_size[which]);
    return 0;
}
