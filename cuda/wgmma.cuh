/* cuda/wgmma.cuh — Hopper (sm_90a) warpgroup matrix products and the shared-memory layout they
 * read, for the kernels of the CUDA layer's wgmma path (forward_wgmma.cu, forward_pingpong.cu,
 * forward_wide.cu and backward_wgmma.cu; docs/cuda.md draws the layout). Layer: cuda (private
 * header, device code).
 *
 * A warpgroup is 4 consecutive warps (128 threads); `wgmma.mma_async` multiplies a 64-row A by
 * an N-column B into float32 accumulators spread over the warpgroup: warp w holds rows
 * 16w .. 16w + 15 exactly as mma.sync's C fragment (tc.cuh) holds a 16 x 8 block, one such block
 * per 8 columns, so a [N/8][4] float array per thread is the same picture the mma.sync kernels
 * use. A from registers has mma.sync's A-fragment layout per warp (two adjacent C blocks, packed).
 *
 * Operands in shared memory are described by a 64-bit descriptor (address, leading and stride
 * byte offsets, swizzle). Every tile here is [rows][D] 16-bit elements, D = 128 or 64, in the
 * 128-byte-swizzle layout (CUTLASS's SW128 atom): D / 64 blocks of 64 columns, each `rows` x 128
 * bytes, element (r, c) of a block at byte r * 128 + ((c / 8) ^ (r % 8)) * 16 + (c % 8) * 2,
 * 1024-byte aligned.
 * One tile serves both operand orientations, which is what the backward needs (Q is B of
 * S^T = K Q^T and of dK += dS^T Q):
 *   K-major (the reduction index k runs along a row): LBO unused (16), SBO = 1024 (8 rows);
 *     step k by 16 = +32 bytes inside a 64-column block, the next block after 4 steps;
 *   MN-major (k runs down the rows, "transposed"): LBO = rows * 128 (the next 64 columns),
 *     SBO = 1024; step k by 16 = +16 rows = +2048 bytes. A product of N = 32 columns reads
 *     half of a 64-column block: its start moves by 64 bytes inside the swizzled rows, as a
 *     K-major k step moves by 32 (FlashAttention-3's backward at D = 64 splits its B tiles
 *     between warpgroups so).
 * Both encodings were checked against a CPU product on an H200 (cuda/experimental/
 * wgmma_probe.cu, 2026-11-22) and by tests/cuda through the kernels that use them.
 */
#ifndef FM_CUDA_WGMMA_CUH
#define FM_CUDA_WGMMA_CUH

#include <type_traits>

#include "tc.cuh"

#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define FM_WGMMA_DEVICE 1
#endif

/* The first 1024-aligned byte of dynamic shared memory at or after raw (SW128 tiles need that
 * alignment). Found by adding to raw itself, not by rounding the address as an integer: the
 * compiler then still knows the result points into shared memory, and the accesses made
 * through it are shared-memory loads and stores (LDS, STS) rather than generic ones, which
 * cost more and queue behind global memory traffic. */
__device__ __forceinline__ unsigned char *fm_smem_align1024(unsigned char *raw)
{
    const uint32_t addr = (uint32_t)__cvta_generic_to_shared(raw);
    return raw + ((1024u - (addr & 1023u)) & 1023u);
}

/* Byte offset of element (r, c) in a [rows][128] SW128 tile. */
__host__ __device__ __forceinline__ uint32_t fm_sw128(int r, int c, int rows)
{
    return (uint32_t)((c >> 6) * rows * 128 + r * 128 + ((((c & 63) >> 3) ^ (r & 7)) << 4) +
                      (c & 7) * 2);
}

/* Copy `rows` rows of D elements (global row stride D; D = 64 or 128) into an SW128 tile with
 * cp.async; rows at or past `valid` are zero-filled. NT threads cooperate. */
template <int NT, int D = 128, typename T>
__device__ __forceinline__ void fm_load_sw128(unsigned char *tile, const T *g, int rows,
                                              int valid, int tid)
{
    static_assert(D == 64 || D == 128, "one or two 64-column blocks");
    constexpr int SHIFT = D == 128 ? 4 : 3; /* log2 of the 16-byte pieces per row */
    for (int i = tid; i < rows << SHIFT; i += NT) {
        const int r = i >> SHIFT, c = (i & ((1 << SHIFT) - 1)) * 8;
        const bool ok = r < valid;
        fm_cp_async16(tile + fm_sw128(r, c, rows), g + (ok ? (size_t)r * D + c : 0), ok);
    }
}

__device__ __forceinline__ uint64_t fm_wg_desc(uint32_t addr, uint32_t lbo, uint32_t sbo)
{
    return (uint64_t)((addr >> 4) & 0x3FFF) | (uint64_t)((lbo >> 4) & 0x3FFF) << 16 |
           (uint64_t)((sbo >> 4) & 0x3FFF) << 32 | (uint64_t)1 << 62;
}

/* The descriptor of `offset` bytes (a multiple of 16) past a descriptor's start: the start
 * field holds the shared address / 16 in 14 bits, and shared addresses stay below 2^18, so
 * adding to the whole descriptor never carries into the next field. One descriptor per tile
 * and constant offsets per k step keep the address arithmetic out of the products' loops. */
__device__ __forceinline__ uint64_t fm_wg_desc_plus(uint64_t desc, uint32_t offset)
{
    return desc + (offset >> 4);
}

/* The descriptor of a 16-wide k step `kk` of an SW128 tile of `rows` rows at shared address
 * `base`, column block `nb` (MN-major: which 64 columns of N; K-major: unused, 0). */
__device__ __forceinline__ uint64_t fm_wg_kmajor(uint32_t base, int rows, int kk)
{
    return fm_wg_desc_plus(fm_wg_desc(base, 16, 1024), (kk >> 2) * rows * 128 + (kk & 3) * 32);
}
__device__ __forceinline__ uint64_t fm_wg_mnmajor(uint32_t base, int rows, int kk, int nb = 0)
{
    return fm_wg_desc_plus(fm_wg_desc(base, rows * 128, 1024), nb * rows * 128 + kk * 2048);
}

#ifdef FM_WGMMA_DEVICE
__device__ __forceinline__ void fm_wg_fence()
{
    asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");
}
__device__ __forceinline__ void fm_wg_commit()
{
    asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
}
template <int N> __device__ __forceinline__ void fm_wg_wait()
{
    asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory");
}
/* Pins the registers of an operand at this point of the program, as CUTLASS's
 * warpgroup_fence_operand does. The compiler sees a wgmma as an ordinary instruction that
 * writes its accumulators when issued; placed after fm_wg_wait, this keeps reads of the
 * accumulators from moving above the wait, and keeps an A operand's registers from being
 * reused while an issued product may still read them. */
template <int N> __device__ __forceinline__ void fm_wg_hold(float (&r)[N][4])
{
#pragma unroll
    for (int i = 0; i < N; i++)
#pragma unroll
        for (int e = 0; e < 4; e++) asm volatile("" : "+f"(r[i][e])::"memory");
}
template <int N> __device__ __forceinline__ void fm_wg_hold(uint32_t (&r)[N][2])
{
#pragma unroll
    for (int i = 0; i < N; i++)
#pragma unroll
        for (int e = 0; e < 2; e++) asm volatile("" : "+r"(r[i][e])::"memory");
}
/* Moves registers between warpgroups (setmaxnreg): every warp of the calling warpgroup runs it,
 * and afterwards each of its threads may use N registers (a multiple of 8 in 24 .. 256). A
 * kernel launched at 168 per thread (three warpgroups) lets its producer give some up (dec)
 * for its consumers to take (inc), as FlashAttention-3 does (forward_wide.cu). */
template <int N> __device__ __forceinline__ void fm_wg_regs_inc()
{
    asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;\n" ::"n"(N));
}
template <int N> __device__ __forceinline__ void fm_wg_regs_dec()
{
    asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;\n" ::"n"(N));
}
/* Generic-proxy writes to shared memory (st.shared, cp.async) -> visible to wgmma's reads. */
__device__ __forceinline__ void fm_fence_async_smem()
{
    asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
}

#define FM_WG_ACC4(i) "+f"(d[i][0]), "+f"(d[i][1]), "+f"(d[i][2]), "+f"(d[i][3])
#define FM_WG_REGS16 "{%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15}"
#define FM_WG_REGS32                                                                               \
    "{%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,%16,%17,%18,%19,%20,%21,%22,%23,"     \
    "%24,%25,%26,%27,%28,%29,%30,%31}"
#define FM_WG_REGS64                                                                               \
    "{%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,%16,%17,%18,%19,%20,%21,%22,%23,"     \
    "%24,%25,%26,%27,%28,%29,%30,%31,%32,%33,%34,%35,%36,%37,%38,%39,%40,%41,%42,%43,%44,%45,"    \
    "%46,%47,%48,%49,%50,%51,%52,%53,%54,%55,%56,%57,%58,%59,%60,%61,%62,%63}"

#define FM_WG_ACCS4 FM_WG_ACC4(0), FM_WG_ACC4(1), FM_WG_ACC4(2), FM_WG_ACC4(3)
#define FM_WG_ACCS8 FM_WG_ACCS4, FM_WG_ACC4(4), FM_WG_ACC4(5), FM_WG_ACC4(6), FM_WG_ACC4(7)
#define FM_WG_ACCS16                                                                               \
    FM_WG_ACCS8, FM_WG_ACC4(8), FM_WG_ACC4(9), FM_WG_ACC4(10), FM_WG_ACC4(11), FM_WG_ACC4(12),    \
        FM_WG_ACC4(13), FM_WG_ACC4(14), FM_WG_ACC4(15)

/* d[64 x N] (+)= A(desc) B(desc), m64nNk16 with both operands in shared memory, one function
 * per N and element type (fm_wg_ss below picks it). TA/TB: that operand is stored MN-major
 * (transposed). acc = 0 overwrites d. REGS and ACCS: the N / 2 accumulator registers; the
 * operands that follow them are numbered from N / 2 (da, db, acc, TA, TB). */
#define FM_WG_SS(N, NAME, REGS, ACCS, DA, DB, ACC, OTA, OTB)                                    \
    template <int TA, int TB>                                                                      \
    __device__ __forceinline__ void fm_wg_ss##N##_##NAME(float (&d)[N / 8][4], uint64_t da,       \
                                                         uint64_t db, int acc)                     \
    {                                                                                              \
        asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %" #ACC ", 0;\n"                            \
                     "wgmma.mma_async.sync.aligned.m64n" #N "k16.f32." #NAME "." #NAME " " REGS    \
                     ", %" #DA ", %" #DB ", p, 1, 1, %" #OTA ", %" #OTB ";\n}\n"                  \
                     : ACCS                                                                        \
                     : "l"(da), "l"(db), "r"(acc), "n"(TA), "n"(TB));                              \
    }
FM_WG_SS(32, f16, FM_WG_REGS16, FM_WG_ACCS4, 16, 17, 18, 19, 20)
FM_WG_SS(32, bf16, FM_WG_REGS16, FM_WG_ACCS4, 16, 17, 18, 19, 20)
FM_WG_SS(64, f16, FM_WG_REGS32, FM_WG_ACCS8, 32, 33, 34, 35, 36)
FM_WG_SS(64, bf16, FM_WG_REGS32, FM_WG_ACCS8, 32, 33, 34, 35, 36)
FM_WG_SS(128, f16, FM_WG_REGS64, FM_WG_ACCS16, 64, 65, 66, 67, 68)
FM_WG_SS(128, bf16, FM_WG_REGS64, FM_WG_ACCS16, 64, 65, 66, 67, 68)

/* d[64 x N] (+)= A(desc) B(desc) for N = 32 (the backward's dQ at D = 64 with two warpgroups),
 * 64 (S and dP of 64 keys) or 128 (the wide forward's S over a 128-key stage). */
template <typename T, int N, int TA, int TB>
__device__ __forceinline__ void fm_wg_ss(float (&d)[N / 8][4], uint64_t da, uint64_t db, int acc)
{
    static_assert(N == 32 || N == 64 || N == 128, "m64n32k16, m64n64k16 or m64n128k16");
    constexpr bool f16 = std::is_same<T, __half>::value;
    if constexpr (N == 32)
        f16 ? fm_wg_ss32_f16<TA, TB>(d, da, db, acc) : fm_wg_ss32_bf16<TA, TB>(d, da, db, acc);
    else if constexpr (N == 64)
        f16 ? fm_wg_ss64_f16<TA, TB>(d, da, db, acc) : fm_wg_ss64_bf16<TA, TB>(d, da, db, acc);
    else
        f16 ? fm_wg_ss128_f16<TA, TB>(d, da, db, acc) : fm_wg_ss128_bf16<TA, TB>(d, da, db, acc);
}

/* d[64 x 128] += A(registers, a[4] per thread) B(desc, MN-major), m64n128k16. */
template <typename T>
__device__ __forceinline__ void fm_wg_rs128(float (&d)[16][4], const uint32_t (&a)[4],
                                            uint64_t db);

#define FM_WG_RS128(TY, NAME)                                                                      \
    template <>                                                                                    \
    __device__ __forceinline__ void fm_wg_rs128<TY>(float (&d)[16][4], const uint32_t (&a)[4],    \
                                                    uint64_t db)                                   \
    {                                                                                              \
        asm volatile("wgmma.mma_async.sync.aligned.m64n128k16.f32." #NAME "." #NAME " "           \
                     FM_WG_REGS64 ", {%64,%65,%66,%67}, %68, 1, 1, 1, 1;\n"                        \
                     : FM_WG_ACC4(0), FM_WG_ACC4(1), FM_WG_ACC4(2), FM_WG_ACC4(3), FM_WG_ACC4(4),  \
                       FM_WG_ACC4(5), FM_WG_ACC4(6), FM_WG_ACC4(7), FM_WG_ACC4(8), FM_WG_ACC4(9),  \
                       FM_WG_ACC4(10), FM_WG_ACC4(11), FM_WG_ACC4(12), FM_WG_ACC4(13),             \
                       FM_WG_ACC4(14), FM_WG_ACC4(15)                                              \
                     : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(db));                       \
    }
FM_WG_RS128(__half, f16)
FM_WG_RS128(__nv_bfloat16, bf16)

/* d[64 x 64] += A(registers, a[4] per thread) B(desc, MN-major), m64n64k16. */
template <typename T>
__device__ __forceinline__ void fm_wg_rs64(float (&d)[8][4], const uint32_t (&a)[4], uint64_t db);

#define FM_WG_RS64(TY, NAME)                                                                       \
    template <>                                                                                    \
    __device__ __forceinline__ void fm_wg_rs64<TY>(float (&d)[8][4], const uint32_t (&a)[4],      \
                                                   uint64_t db)                                    \
    {                                                                                              \
        asm volatile("wgmma.mma_async.sync.aligned.m64n64k16.f32." #NAME "." #NAME " "            \
                     FM_WG_REGS32 ", {%32,%33,%34,%35}, %36, 1, 1, 1, 1;\n"                        \
                     : FM_WG_ACC4(0), FM_WG_ACC4(1), FM_WG_ACC4(2), FM_WG_ACC4(3), FM_WG_ACC4(4),  \
                       FM_WG_ACC4(5), FM_WG_ACC4(6), FM_WG_ACC4(7)                                 \
                     : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(db));                       \
    }
FM_WG_RS64(__half, f16)
FM_WG_RS64(__nv_bfloat16, bf16)

/* d[64 x N] += A(registers) B(desc, MN-major) for N = 64 or 128 (the forwards' P V). */
template <typename T, int N>
__device__ __forceinline__ void fm_wg_rs(float (&d)[N / 8][4], const uint32_t (&a)[4], uint64_t db)
{
    static_assert(N == 64 || N == 128, "m64n64k16 or m64n128k16");
    if constexpr (N == 128)
        fm_wg_rs128<T>(d, a, db);
    else
        fm_wg_rs64<T>(d, a, db);
}

/* d[64 x (D + 8)] += A(registers) B(desc, MN-major), m64n136k16 and m64n72k16: P V with eight
 * more columns than D, which forward_wide.cu fills with ones so that the product also forms the
 * row sums of P (the accumulator's last 8-column block). */
#define FM_WG_REGS68                                                                             \
    "{%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,%16,%17,%18,%19,%20,%21,%22,%23,"    \
    "%24,%25,%26,%27,%28,%29,%30,%31,%32,%33,%34,%35,%36,%37,%38,%39,%40,%41,%42,%43,%44,%45,"   \
    "%46,%47,%48,%49,%50,%51,%52,%53,%54,%55,%56,%57,%58,%59,%60,%61,%62,%63,%64,%65,%66,"       \
    "%67}"
#define FM_WG_REGS36                                                                            \
    "{%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,%16,%17,%18,%19,%20,%21,%22,%23,"   \
    "%24,%25,%26,%27,%28,%29,%30,%31,%32,%33,%34,%35}"
template <typename T, int D>
__device__ __forceinline__ void fm_wg_rs_plus8(float (&d)[D / 8 + 1][4], const uint32_t (&a)[4],
                                               uint64_t db);
#define FM_WG_RS_PLUS8(D, N, TY, NAME, REGS, ACCS, A0, A1, A2, A3, DB)                            \
    template <>                                                                                    \
    __device__ __forceinline__ void fm_wg_rs_plus8<TY, D>(float (&d)[D / 8 + 1][4],              \
                                                          const uint32_t (&a)[4], uint64_t db)    \
    {                                                                                              \
        asm volatile("wgmma.mma_async.sync.aligned.m64n" #N "k16.f32." #NAME "." #NAME " " REGS  \
                     ", {%" #A0 ",%" #A1 ",%" #A2 ",%" #A3 "}, %" #DB ", 1, 1, 1, 1;\n"          \
                     : ACCS                                                                        \
                     : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(db));                       \
    }
#define FM_WG_ACCS9 FM_WG_ACCS8, FM_WG_ACC4(8)
#define FM_WG_ACCS17 FM_WG_ACCS16, FM_WG_ACC4(16)
FM_WG_RS_PLUS8(128, 136, __half, f16, FM_WG_REGS68, FM_WG_ACCS17, 68, 69, 70, 71, 72)
FM_WG_RS_PLUS8(128, 136, __nv_bfloat16, bf16, FM_WG_REGS68, FM_WG_ACCS17, 68, 69, 70, 71, 72)
FM_WG_RS_PLUS8(64, 72, __half, f16, FM_WG_REGS36, FM_WG_ACCS9, 36, 37, 38, 39, 40)
FM_WG_RS_PLUS8(64, 72, __nv_bfloat16, bf16, FM_WG_REGS36, FM_WG_ACCS9, 36, 37, 38, 39, 40)

#endif /* FM_WGMMA_DEVICE */

#endif
