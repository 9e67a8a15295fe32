/* tests/packaging/consumer.c — a program that uses libflashmask the way an outside C project
 * does: `#include <flashmask.h>`, flags from pkg-config (flashmask.pc) or from
 * dependency('flashmask') in a Meson project that has libflashmask as a subproject. It checks
 * that the headers and the library are the same version, builds a causal mask, counts its
 * allowed pairs (S (S + 1) / 2 for a square causal mask) and runs the float64 reference forward
 * on a tiny problem. Exit 0 on success. Layer: an outside consumer (tests/packaging). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <flashmask.h>

#define S 16
#define D 8

int main(void)
{
    if (strcmp(fm_version(), FM_VERSION_STRING) != 0) {
        fprintf(stderr, "consumer: library %s, headers %s\n", fm_version(), FM_VERSION_STRING);
        return 1;
    }
    fm_mask_params mp;
    fm_mask m;
    memset(&m, 0, sizeof m);
    if (fm_mask_params_default(&mp, FM_FAMILY_CAUSAL, S) != FM_OK
        || fm_mask_build(&m, &mp, 1, 1, S, S, FM_CAUSAL_BOTTOM_RIGHT) != FM_OK) {
        fprintf(stderr, "consumer: mask: %s\n", fm_last_error());
        return 1;
    }
    int64_t pairs = fm_mask_total_allowed_pairs(&m);
    if (pairs != S * (S + 1) / 2) {
        fprintf(stderr, "consumer: causal %dx%d has %lld allowed pairs\n", S, S, (long long)pairs);
        return 1;
    }
    fm_problem p;
    fm_problem_init(&p, 1, 1, 1, S, S, D);
    static double q[S * D], k[S * D], v[S * D], out[S * D], lse[S];
    for (int i = 0; i < S * D; i++) {
        q[i] = sin(i);
        k[i] = cos(i);
        v[i] = (double)(i % 7) / 7.0;
    }
    fm_tensors t = {.q = q, .k = k, .v = v, .out = out, .lse = lse};
    fm_status st = fm_forward(FM_IMPL_REFERENCE, &p, &m, &t);
    if (st != FM_OK) {
        fprintf(stderr, "consumer: forward: %s\n", fm_last_error());
        return 1;
    }
    /* row 0 sees key 0 only: out[0] = v[0], lse[0] = s * q0.k0 */
    double dot = 0;
    for (int d = 0; d < D; d++)
        dot += q[d] * k[d];
    if (fabs(out[1] - v[1]) > 1e-12 || fabs(lse[0] - p.scale * dot) > 1e-12) {
        fprintf(stderr, "consumer: wrong first row\n");
        return 1;
    }
    fm_mask_free(&m);
    fm_mask_params_free(&mp);
    printf("consumer: libflashmask %s ok\n", fm_version());
    return 0;
}
