/* cuda/tma.cuh — Hopper's asynchronous copy engine (TMA) and the shared-memory barriers
 * (mbarrier) that say when its copies have landed, for warp-specialised kernels where one warp
 * loads and the others compute (forward_sm90.cuh), and the named barriers that order warps
 * without memory (forward_pingpong.cu). Layer: cuda (private header).
 *
 * Host side: fm_tma_map_3d describes a [n2][n1][n0] tensor in global memory (n0 contiguous) to
 * the copy engine, with a box of [1][box1][box0] elements per copy; rows past n1 read as zeros,
 * so a key block that runs past the end of a head is zero-filled, never the next head's data.
 * The encoder is the driver's cuTensorMapEncodeTiled, reached through the runtime
 * (cudaGetDriverEntryPointByVersion) so that libflashmask does not link libcuda.
 *
 * Device side: an mbarrier is a 64-bit shared-memory counter with a phase bit. A producer
 * announces how many bytes a stage will receive (arrive.expect_tx) and issues the copies, which
 * count those bytes down as they land; the phase flips when both the arrivals and the bytes are
 * complete, and a consumer waits for the flip by its parity. TMA writes through the async proxy,
 * the proxy wgmma reads through, so no proxy fence is needed between them.
 *
 * The other direction: a bulk reduction adds a contiguous run of shared memory into global
 * memory element by element (backward_wgmma.cu's dQ). Threads write the run with ordinary
 * stores, each fences them to the async proxy (fence.proxy.async.shared::cta, wgmma.cuh), a
 * barrier gathers the writers, and one thread issues the copy and commits it as a bulk group;
 * that thread alone can wait for its groups: first for their reads of shared memory (the run may
 * then be written again), at the end for their completion.
 */
#ifndef FM_CUDA_TMA_CUH
#define FM_CUDA_TMA_CUH

#include <cuda.h>
#include <cuda_runtime.h>
#include <stdint.h>

/* Element types the maps here carry. */
enum fm_tma_elem { FM_TMA_F16, FM_TMA_BF16, FM_TMA_I32 };

/* Fill *map for base [n2][n1][n0] (elements of `elem`, contiguous), boxes of box1 x box0,
 * swizzled in 128-byte rows (the SW128 layout of wgmma.cuh) when swizzle128. Returns
 * cudaErrorNotSupported when the driver lacks the encoder or refuses the description (e.g. a
 * base not 16-byte aligned): the caller then uses a kernel that does not need TMA. */
cudaError_t fm_tma_map_3d(CUtensorMap *map, const void *base, fm_tma_elem elem, uint64_t n0,
                          uint64_t n1, uint64_t n2, uint32_t box0, uint32_t box1,
                          bool swizzle128);

/* Fill *map for a flat array of n elements, boxes of `box` (box * element bytes a multiple of
 * 16): runs of a per-row float32 tensor (the backward's LSE and Delta as 32-bit words,
 * FM_TMA_I32); elements past n read as zeros. As for every map, a box's innermost coordinate
 * must be 16-byte aligned (here: a multiple of 16 / element bytes), or the copy faults. Fails as
 * fm_tma_map_3d does. */
cudaError_t fm_tma_map_1d(CUtensorMap *map, const void *base, fm_tma_elem elem, uint64_t n,
                          uint32_t box);

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
__device__ __forceinline__ void fm_mbar_init(uint32_t bar, uint32_t count)
{
    asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(bar), "r"(count) : "memory");
}
/* Make the initialised barriers visible to the copy engine (then __syncthreads). */
__device__ __forceinline__ void fm_mbar_init_fence()
{
    asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
}
__device__ __forceinline__ void fm_mbar_arrive(uint32_t bar)
{
    asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"(bar) : "memory");
}
__device__ __forceinline__ void fm_mbar_arrive_expect_tx(uint32_t bar, uint32_t bytes)
{
    asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(bar),
                 "r"(bytes)
                 : "memory");
}
/* Wait until the phase with this parity has completed. */
__device__ __forceinline__ void fm_mbar_wait(uint32_t bar, uint32_t parity)
{
    uint32_t done;
    do {
        asm volatile("{\n.reg .pred p;\nmbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\n"
                     "selp.u32 %0, 1, 0, p;\n}\n"
                     : "=r"(done)
                     : "r"(bar), "r"(parity)
                     : "memory");
    } while (!done);
}
/* Named barriers (bar.sync / bar.arrive with an id in 1..15; 0 is __syncthreads'): `count`
 * threads (a multiple of 32) take part in one phase. fm_bar_sync counts the calling warp in and
 * waits until all `count` have arrived; fm_bar_arrive counts it in and goes on. Every thread of
 * a warp calls them together. forward_pingpong.cu passes turns between warpgroups with them. */
__device__ __forceinline__ void fm_bar_sync(int id, int count)
{
    asm volatile("bar.sync %0, %1;\n" ::"r"(id), "r"(count) : "memory");
}
/* fm_bar_sync with an id known when compiling, so that ptxas reserves only the ids in use. */
template <int ID> __device__ __forceinline__ void fm_bar_sync_id(int count)
{
    asm volatile("bar.sync %0, %1;\n" ::"n"(ID), "r"(count) : "memory");
}
__device__ __forceinline__ void fm_bar_arrive(int id, int count)
{
    asm volatile("bar.arrive %0, %1;\n" ::"r"(id), "r"(count) : "memory");
}
/* One box of a 1D map at element coordinate x0 (16-byte aligned in bytes) into shared memory
 * at dst (128-byte aligned); its bytes count down barrier bar. */
__device__ __forceinline__ void fm_tma_load_1d(uint32_t dst, const CUtensorMap *map, uint32_t bar,
                                               int x0)
{
    asm volatile("cp.async.bulk.tensor.1d.shared::cluster.global.mbarrier::complete_tx::bytes"
                 " [%0], [%1, {%3}], [%2];\n" ::"r"(dst),
                 "l"(reinterpret_cast<uint64_t>(map)), "r"(bar), "r"(x0)
                 : "memory");
}
/* One box at element coordinates (x0, x1, x2) into shared memory at dst; its bytes count down
 * barrier bar. */
__device__ __forceinline__ void fm_tma_load_3d(uint32_t dst, const CUtensorMap *map, uint32_t bar,
                                               int x0, int x1, int x2)
{
    asm volatile("cp.async.bulk.tensor.3d.shared::cluster.global.mbarrier::complete_tx::bytes"
                 " [%0], [%1, {%3, %4, %5}], [%2];\n" ::"r"(dst),
                 "l"(reinterpret_cast<uint64_t>(map)), "r"(bar), "r"(x0), "r"(x1), "r"(x2)
                 : "memory");
}
__device__ __forceinline__ void fm_tma_prefetch_map(const CUtensorMap *map)
{
    asm volatile("prefetch.tensormap [%0];\n" ::"l"(reinterpret_cast<uint64_t>(map)) : "memory");
}
/* dst[i] += src[i] (float32) for `bytes` bytes (a multiple of 16; both addresses 16-byte
 * aligned), from shared address src into global dst, asynchronously; tracked by bulk groups. */
__device__ __forceinline__ void fm_bulk_reduce_add_f32(float *dst, uint32_t src, uint32_t bytes)
{
    asm volatile("cp.reduce.async.bulk.global.shared::cta.bulk_group.add.f32 [%0], [%1], %2;\n"
                 ::"l"(dst), "r"(src), "r"(bytes)
                 : "memory");
}
/* Close this thread's bulk copies issued since its last commit into one bulk group. */
__device__ __forceinline__ void fm_bulk_commit()
{
    asm volatile("cp.async.bulk.commit_group;\n" ::: "memory");
}
/* Wait until at most N of this thread's bulk groups still read their shared-memory source. */
template <int N> __device__ __forceinline__ void fm_bulk_wait_read()
{
    asm volatile("cp.async.bulk.wait_group.read %0;\n" ::"n"(N) : "memory");
}
/* Wait until at most N of this thread's bulk groups are incomplete (their writes included). */
template <int N> __device__ __forceinline__ void fm_bulk_wait()
{
    asm volatile("cp.async.bulk.wait_group %0;\n" ::"n"(N) : "memory");
}
#endif

#endif
