/* cuda/experimental/wgmma_probe.cu — UNVALIDATED (written without a GPU, 2026-11-22): the first
 * step of a Hopper (sm_90a) path for the CUDA layer. A standalone program that checks, on one
 * warpgroup, the two wgmma products a FlashAttention-3 style forward needs, against a CPU
 * reference, for each candidate encoding of the shared-memory descriptors:
 *
 *   1. S[64x64] = Q[64x128] K[64x128]^T   A and B from shared memory, K-major, 128-byte swizzle
 *                                          (wgmma.m64n64k16, tnspA = tnspB = 0);
 *   2. O[64x128] = P[64x64] V[64x128]      A (P) from registers in the mma.sync A-fragment layout,
 *                                          B = V MN-major ([key][d], d contiguous), 128-byte
 *                                          swizzle, tnspB = 1 (wgmma.m64n128k16).
 *
 * Shared-memory layout used for both (CUTLASS's canonical SW128 atoms): a [rows][64 x bf16]
 * block of 128-byte rows, element (r, c) at byte r*128 + ((c/8) ^ (r%8))*16 + (c%8)*2, blocks of
 * 64 columns one after the other (block stride rows*128 bytes), 1024-byte aligned.
 * Descriptor (PTX "matrix descriptor"): bits 0-13 start address >> 4, 16-29 LBO >> 4, 32-45 SBO
 * >> 4, 62-63 swizzle (1 = 128 B). Expected: K-major SBO = 1024 (8 rows), LBO unused (1);
 * MN-major SBO = 1024 (8 K-rows), LBO = stride between 64-column blocks. The probe tries the
 * expected encoding and the swapped one and prints which match.
 *
 * Build and run (GPU host, CUDA 12.3+):
 *   nvcc -std=c++17 -O2 -gencode arch=compute_90a,code=sm_90a cuda/experimental/wgmma_probe.cu \
 *        -o /tmp/wgmma_probe && /tmp/wgmma_probe
 * Not part of the Meson build. Layer: cuda (experimental).
 */
#include <cuda_bf16.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <math.h>

#define CHECK(x)                                                                                   \
    do {                                                                                           \
        cudaError_t e_ = (x);                                                                      \
        if (e_ != cudaSuccess) {                                                                   \
            fprintf(stderr, "%s:%d %s: %s\n", __FILE__, __LINE__, #x, cudaGetErrorString(e_));     \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

/* byte offset of element (r, c) in an SW128 tile of `rows` rows (columns in blocks of 64) */
__host__ __device__ inline uint32_t sw128_offset(int r, int c, int rows)
{
    return (uint32_t)((c / 64) * rows * 128 + r * 128 + ((((c % 64) / 8) ^ (r % 8)) * 16) +
                      (c % 8) * 2);
}

__device__ inline uint64_t make_desc(uint32_t smem_addr, uint32_t lbo, uint32_t sbo)
{
    uint64_t d = 0;
    d |= (uint64_t)((smem_addr >> 4) & 0x3FFF);
    d |= (uint64_t)((lbo >> 4) & 0x3FFF) << 16;
    d |= (uint64_t)((sbo >> 4) & 0x3FFF) << 32;
    d |= (uint64_t)1 << 62; /* 128-byte swizzle */
    return d;
}

__device__ inline void wg_fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ inline void wg_commit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
__device__ inline void wg_wait0() { asm volatile("wgmma.wait_group.sync.aligned 0;\n" ::: "memory"); }

/* d[32] (+)= A(desc) * B(desc)^T, 64x64x16, bf16 -> f32 */
__device__ inline void wgmma_m64n64k16_ss(float (&d)[32], uint64_t da, uint64_t db, int accumulate)
{
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 "
        "{%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,"
        "%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31}, "
        "%32, %33, p, 1, 1, 0, 0;\n}\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]),
          "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]),
          "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]),
          "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]),
          "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]),
          "+f"(d[31])
        : "l"(da), "l"(db), "r"(accumulate));
}

/* d[64] (+)= A(regs a[4]) * B(desc, transposed: MN-major), 64x128x16 */
__device__ inline void wgmma_m64n128k16_rs_tb(float (&d)[64], const uint32_t (&a)[4], uint64_t db,
                                              int accumulate)
{
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %69, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 "
        "{%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,"
        "%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31,"
        "%32,%33,%34,%35,%36,%37,%38,%39,%40,%41,%42,%43,%44,%45,%46,%47,"
        "%48,%49,%50,%51,%52,%53,%54,%55,%56,%57,%58,%59,%60,%61,%62,%63}, "
        "{%64,%65,%66,%67}, %68, p, 1, 1, 1;\n}\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]),
          "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]),
          "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]),
          "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]),
          "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]),
          "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]),
          "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), "+f"(d[42]),
          "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]),
          "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]),
          "+f"(d[55]), "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]),
          "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(db), "r"(accumulate));
}

/* Copy a row-major [rows][cols] bf16 global matrix into the SW128 layout (plain stores), then
 * make it visible to the async proxy (wgmma reads shared memory through it). */
__device__ void stage_sw128(unsigned char *smem, const __nv_bfloat16 *g, int rows, int cols)
{
    for (int i = threadIdx.x; i < rows * cols; i += blockDim.x) {
        const int r = i / cols, c = i % cols;
        *reinterpret_cast<__nv_bfloat16 *>(smem + sw128_offset(r, c, rows)) = g[i];
    }
    asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
}

/* S = Q K^T with the K-major descriptors (lbo, sbo as given). One warpgroup, 64x64 result. */
__global__ void probe_qk(const __nv_bfloat16 *q, const __nv_bfloat16 *k, float *s, uint32_t lbo,
                         uint32_t sbo)
{
    extern __shared__ __align__(1024) unsigned char smem[];
    unsigned char *sQ = smem, *sK = smem + 64 * 128 * 2;
    stage_sw128(sQ, q, 64, 128);
    stage_sw128(sK, k, 64, 128);
    __syncthreads();
    const uint32_t aq = (uint32_t)__cvta_generic_to_shared(sQ);
    const uint32_t ak = (uint32_t)__cvta_generic_to_shared(sK);
    float d[32];
    for (int i = 0; i < 32; i++) d[i] = 0.f;
    wg_fence();
    for (int kk = 0; kk < 128 / 16; kk++) {
        /* k16 step: +32 bytes inside a 64-column block, next block after 4 steps */
        const uint32_t off = (kk / 4) * 64 * 128 + (kk % 4) * 32;
        wgmma_m64n64k16_ss(d, make_desc(aq + off, lbo, sbo), make_desc(ak + off, lbo, sbo), 1);
    }
    wg_commit();
    wg_wait0();
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
    for (int n = 0; n < 8; n++)
        for (int e = 0; e < 4; e++) {
            const int row = warp * 16 + g + (e / 2) * 8, col = n * 8 + 2 * t + (e % 2);
            s[row * 64 + col] = d[n * 4 + e];
        }
}

/* O = P V: P [64x64] from registers (mma.sync A layout), V MN-major SW128 (lbo, sbo). */
__global__ void probe_pv(const __nv_bfloat16 *pm, const __nv_bfloat16 *v, float *o, uint32_t lbo,
                         uint32_t sbo)
{
    extern __shared__ __align__(1024) unsigned char smem[];
    unsigned char *sV = smem;
    stage_sw128(sV, v, 64, 128); /* rows = keys (the K dimension), 128 d-columns in 2 blocks */
    __syncthreads();
    const uint32_t av = (uint32_t)__cvta_generic_to_shared(sV);
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
    float d[64];
    for (int i = 0; i < 64; i++) d[i] = 0.f;
    for (int kk = 0; kk < 64 / 16; kk++) {
        /* A fragment of rows warp*16 .. +16, keys kk*16 .. +16 (mma.sync m16n8k16 layout) */
        uint32_t a[4];
        const int r0 = warp * 16 + g, c0 = kk * 16 + 2 * t;
        const __nv_bfloat16 *P = pm;
        __nv_bfloat162 x0 = {P[r0 * 64 + c0], P[r0 * 64 + c0 + 1]};
        __nv_bfloat162 x1 = {P[(r0 + 8) * 64 + c0], P[(r0 + 8) * 64 + c0 + 1]};
        __nv_bfloat162 x2 = {P[r0 * 64 + c0 + 8], P[r0 * 64 + c0 + 9]};
        __nv_bfloat162 x3 = {P[(r0 + 8) * 64 + c0 + 8], P[(r0 + 8) * 64 + c0 + 9]};
        a[0] = *reinterpret_cast<uint32_t *>(&x0), a[1] = *reinterpret_cast<uint32_t *>(&x1);
        a[2] = *reinterpret_cast<uint32_t *>(&x2), a[3] = *reinterpret_cast<uint32_t *>(&x3);
        wg_fence();
        /* k16 step along the keys: 16 rows of 128 bytes */
        wgmma_m64n128k16_rs_tb(d, a, make_desc(av + kk * 16 * 128, lbo, sbo), 1);
        wg_commit();
        wg_wait0();
    }
    for (int n = 0; n < 16; n++)
        for (int e = 0; e < 4; e++) {
            const int row = warp * 16 + g + (e / 2) * 8, col = n * 8 + 2 * t + (e % 2);
            o[row * 128 + col] = d[n * 4 + e];
        }
}

static float bf(float x) { return __bfloat162float(__float2bfloat16(x)); }

static double max_err(const float *got, const float *want, int n)
{
    double m = 0;
    for (int i = 0; i < n; i++) m = fmax(m, fabs((double)got[i] - want[i]));
    return m;
}

int main(void)
{
    const int M = 64, N = 64, D = 128;
    float *q = (float *)malloc(M * D * 4), *k = (float *)malloc(N * D * 4);
    float *p = (float *)malloc(M * N * 4), *v = (float *)malloc(N * D * 4);
    __nv_bfloat16 *hq = (__nv_bfloat16 *)malloc(M * D * 2), *hk = (__nv_bfloat16 *)malloc(N * D * 2);
    __nv_bfloat16 *hp = (__nv_bfloat16 *)malloc(M * N * 2), *hv = (__nv_bfloat16 *)malloc(N * D * 2);
    srand(1);
    for (int i = 0; i < M * D; i++) q[i] = bf((rand() / (float)RAND_MAX) - 0.5f), hq[i] = __float2bfloat16(q[i]);
    for (int i = 0; i < N * D; i++) k[i] = bf((rand() / (float)RAND_MAX) - 0.5f), hk[i] = __float2bfloat16(k[i]);
    for (int i = 0; i < M * N; i++) p[i] = bf(rand() / (float)RAND_MAX), hp[i] = __float2bfloat16(p[i]);
    for (int i = 0; i < N * D; i++) v[i] = bf((rand() / (float)RAND_MAX) - 0.5f), hv[i] = __float2bfloat16(v[i]);
    float *s_ref = (float *)calloc(M * N, 4), *o_ref = (float *)calloc(M * D, 4);
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++)
            for (int c = 0; c < D; c++) s_ref[i * N + j] += q[i * D + c] * k[j * D + c];
    for (int i = 0; i < M; i++)
        for (int c = 0; c < D; c++)
            for (int j = 0; j < N; j++) o_ref[i * D + c] += p[i * N + j] * v[j * D + c];

    __nv_bfloat16 *dq, *dk, *dp, *dv;
    float *ds, *dout;
    CHECK(cudaMalloc(&dq, M * D * 2)); CHECK(cudaMalloc(&dk, N * D * 2));
    CHECK(cudaMalloc(&dp, M * N * 2)); CHECK(cudaMalloc(&dv, N * D * 2));
    CHECK(cudaMalloc(&ds, M * N * 4)); CHECK(cudaMalloc(&dout, M * D * 4));
    CHECK(cudaMemcpy(dq, hq, M * D * 2, cudaMemcpyHostToDevice));
    CHECK(cudaMemcpy(dk, hk, N * D * 2, cudaMemcpyHostToDevice));
    CHECK(cudaMemcpy(dp, hp, M * N * 2, cudaMemcpyHostToDevice));
    CHECK(cudaMemcpy(dv, hv, N * D * 2, cudaMemcpyHostToDevice));
    CHECK(cudaFuncSetAttribute(probe_qk, cudaFuncAttributeMaxDynamicSharedMemorySize, 64 * 1024));
    CHECK(cudaFuncSetAttribute(probe_pv, cudaFuncAttributeMaxDynamicSharedMemorySize, 64 * 1024));
    float *s = (float *)malloc(M * N * 4), *o = (float *)malloc(M * D * 4);

    const uint32_t cand[][2] = {{16, 1024}, {1024, 16}, {8192, 1024}, {1024, 8192}};
    const char *names[] = {"LBO=16 SBO=1024", "LBO=1024 SBO=16", "LBO=8192 SBO=1024",
                           "LBO=1024 SBO=8192"};
    for (int c = 0; c < 4; c++) {
        CHECK(cudaMemset(ds, 0, M * N * 4));
        probe_qk<<<1, 128, 64 * 1024>>>(dq, dk, ds, cand[c][0], cand[c][1]);
        CHECK(cudaDeviceSynchronize());
        CHECK(cudaMemcpy(s, ds, M * N * 4, cudaMemcpyDeviceToHost));
        printf("Q K^T  K-major SW128  %-18s max|err| %.3g\n", names[c], max_err(s, s_ref, M * N));
    }
    for (int c = 0; c < 4; c++) {
        CHECK(cudaMemset(dout, 0, M * D * 4));
        probe_pv<<<1, 128, 64 * 1024>>>(dp, dv, dout, cand[c][0], cand[c][1]);
        CHECK(cudaDeviceSynchronize());
        CHECK(cudaMemcpy(o, dout, M * D * 4, cudaMemcpyDeviceToHost));
        printf("P V    MN-major SW128 %-18s max|err| %.3g\n", names[c], max_err(o, o_ref, M * D));
    }
    printf("(a match is max|err| ~1e-5 or below: float32 sums of exact bf16 products)\n");
    return 0;
}
