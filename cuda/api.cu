/* cuda/api.cu — the CUDA layer's public entry points on device memory (flashmask/cuda.h):
 * availability, the device-resident mask (upload + the GPU summary pre-pass), and forward /
 * backward on device pointers. Checks every argument and every CUDA call, and reports through
 * fm_status with a message naming the offending value.
 * Layer: cuda <- masks <- core. The host-memory path is host.cu; the kernels are summary.cu,
 * forward.cu and backward.cu (and their Hopper forms); ladder/ladder.cu picks the kernel of a
 * ladder step (step 0: the library's choice).
 */
#include <string.h>

#include "flashmask/cuda.h"
extern "C" {
#include "fm_internal.h" /* a C header without C++ guards */
}
#include "heuristics.h"
#include "kernels.h"
#include "ladder/ladder.h"
#include "problem_check.h"

/* Turn a CUDA error into FM_ERR_DEVICE with the call that failed. */
static fm_status cuda_fail(cudaError_t err, const char *what)
{
    return fm_fail(FM_ERR_DEVICE, "cuda: %s failed: %s (%s)", what, cudaGetErrorName(err),
                   cudaGetErrorString(err));
}

extern "C" fm_status fm_cuda_available(void)
{
    int count = 0;
    cudaError_t err = cudaGetDeviceCount(&count);
    if (err != cudaSuccess)
        return fm_fail(FM_ERR_UNAVAILABLE, "cuda: no usable CUDA device: %s",
                       cudaGetErrorString(err));
    if (count == 0) return fm_fail(FM_ERR_UNAVAILABLE, "cuda: no CUDA device present");
    int dev = 0, major = 0, minor = 0;
    if ((err = cudaGetDevice(&dev)) != cudaSuccess) return cuda_fail(err, "cudaGetDevice");
    cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev);
    cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev);
    if (major < 8)
        return fm_fail(FM_ERR_UNAVAILABLE,
                       "cuda: device %d has compute capability %d.%d; the kernels need >= 8.0",
                       dev, major, minor);
    return FM_OK;
}

/* The longest sequence the kernels take: rows and columns are 32-bit with a block of headroom. */
enum { FM_CUDA_MAX_SEQLEN = INT32_MAX - 256 };

extern "C" void fm_cuda_mask_free(fm_cuda_mask *m)
{
    if (!m) return;
    if (m->bounds) cudaFree(m->bounds);
    if (m->summary) cudaFree(m->summary);
    m->bounds = m->summary = NULL;
}

extern "C" fm_status fm_cuda_mask_upload(const fm_mask *mask, fm_cuda_mask *out)
{
    fm_clear_error();
    if (!out) return fm_fail(FM_ERR_INVALID, "cuda mask: NULL output");
    memset(out, 0, sizeof *out);
    fm_status st = fm_mask_validate(mask);
    if (st != FM_OK) return st;
    /* The kernels walk rows and columns in 32-bit arithmetic with a block of headroom; prepare()
     * refuses such problems too, and the pre-pass kernels must never see them. */
    if (mask->seqlen_q > FM_CUDA_MAX_SEQLEN || mask->seqlen_k > FM_CUDA_MAX_SEQLEN)
        return fm_fail(FM_ERR_OVERFLOW, "cuda mask: Sq = %lld, Sk = %lld; the CUDA layer takes "
                       "sequences up to %d", (long long)mask->seqlen_q,
                       (long long)mask->seqlen_k, FM_CUDA_MAX_SEQLEN);
    if ((st = fm_cuda_available()) != FM_OK) return st;
    const int64_t n_blocks = (mask->seqlen_k + FM_CUDA_BLOCK_K - 1) / FM_CUDA_BLOCK_K;
    size_t n_bounds, n_summary;
    int64_t bshape[] = {mask->batch, mask->heads, mask->seqlen_k, FM_BOUNDS};
    int64_t sshape[] = {mask->batch, mask->heads, n_blocks, FM_SUMMARY_WIDTH};
    if (fm_mul_sizes(&n_bounds, 4, bshape) || fm_mul_sizes(&n_summary, 4, sshape) ||
        n_bounds > SIZE_MAX / sizeof(int32_t) || mask->batch * mask->heads > INT32_MAX)
        return fm_fail(FM_ERR_OVERFLOW, "cuda mask: B*Hm*Sk*4 bounds overflow");
    cudaError_t err = cudaMalloc((void **)&out->bounds, n_bounds * sizeof(int32_t));
    if (err == cudaSuccess)
        err = cudaMalloc((void **)&out->summary, n_summary * sizeof(int32_t));
    if (err != cudaSuccess) {
        fm_cuda_mask_free(out);
        return fm_fail(FM_ERR_NOMEM, "cuda mask: cudaMalloc of %zu bounds failed: %s", n_bounds,
                       cudaGetErrorString(err));
    }
    err = cudaMemcpy(out->bounds, mask->bounds, n_bounds * sizeof(int32_t),
                     cudaMemcpyHostToDevice);
    if (err == cudaSuccess)
        err = fm_cuda_launch_summary(out->bounds, out->summary, (int)mask->batch,
                                     (int)mask->heads, (int)mask->seqlen_q, (int)mask->seqlen_k,
                                     0);
    unsigned long long *live_dev = NULL, live = 0;
    if (err == cudaSuccess) err = cudaMalloc((void **)&live_dev, sizeof *live_dev);
    if (err == cudaSuccess)
        err = fm_cuda_launch_live_tiles(out->summary, (int)mask->batch, (int)mask->heads,
                                        (int)mask->seqlen_q, (int)mask->seqlen_k,
                                        (int)mask->causal, live_dev, 0);
    if (err == cudaSuccess) err = cudaMemcpy(&live, live_dev, sizeof live, cudaMemcpyDeviceToHost);
    if (live_dev) cudaFree(live_dev);
    if (err == cudaSuccess) err = cudaDeviceSynchronize();
    if (err != cudaSuccess) {
        fm_cuda_mask_free(out);
        return cuda_fail(err, "mask upload / summary pre-pass");
    }
    out->live_per_kblock = (double)live / (double)(mask->batch * mask->heads * n_blocks);
    out->batch = mask->batch;
    out->heads = mask->heads;
    out->seqlen_q = mask->seqlen_q;
    out->seqlen_k = mask->seqlen_k;
    out->causal = mask->causal;
    out->block_k = FM_CUDA_BLOCK_K;
    out->n_blocks = n_blocks;
    return FM_OK;
}

extern "C" fm_status fm_cuda_copy_summary(const fm_cuda_mask *m, int32_t *out)
{
    fm_clear_error();
    if (!m || !m->summary || !out) return fm_fail(FM_ERR_INVALID, "cuda summary: NULL argument");
    const size_t n = (size_t)(m->batch * m->heads * m->n_blocks * FM_SUMMARY_WIDTH);
    cudaError_t err = cudaMemcpy(out, m->summary, n * sizeof(int32_t), cudaMemcpyDeviceToHost);
    return err == cudaSuccess ? FM_OK : cuda_fail(err, "summary download");
}

static fm_status check_and_fill(const fm_problem *p, const fm_cuda_mask *m, fm_attn_params *kp);

/* The problem against itself and the device mask, then the kernel plan (cuda/heuristics.cu):
 * fills the kernels' parameter block and says which kernels run. */
static fm_status prepare(const fm_problem *p, const fm_cuda_mask *m, const fm_kernel_options *opt,
                         bool backward, fm_attn_params *kp, fm_kernel_plan *plan)
{
    fm_status st = check_and_fill(p, m, kp);
    return st != FM_OK ? st : fm_cuda_plan_kernels(p, *kp, opt, backward, plan);
}

fm_status fm_cuda_check_problem(const char *who, const fm_problem *p, const fm_cuda_mask *m)
{
    if (!p || !m) return fm_fail(FM_ERR_INVALID, "%s: NULL problem or mask", who);
    if (!m->bounds || !m->summary)
        return fm_fail(FM_ERR_INVALID, "%s: mask not uploaded (use fm_cuda_mask_upload)", who);
    if (p->batch < 1 || p->q_heads < 1 || p->kv_heads < 1 || p->seqlen_q < 1 || p->seqlen_k < 1)
        return fm_fail(FM_ERR_INVALID, "%s: sizes must be >= 1 (B=%lld Hq=%lld Hk=%lld "
                       "Sq=%lld Sk=%lld)", who, (long long)p->batch, (long long)p->q_heads,
                       (long long)p->kv_heads, (long long)p->seqlen_q, (long long)p->seqlen_k);
    if (p->q_heads % p->kv_heads != 0)
        return fm_fail(FM_ERR_INVALID, "%s: kv_heads = %lld does not divide q_heads = %lld",
                       who, (long long)p->kv_heads, (long long)p->q_heads);
    if (m->heads < 1 || p->q_heads % m->heads != 0)
        return fm_fail(FM_ERR_INVALID, "%s: mask heads = %lld does not divide q_heads = %lld",
                       who, (long long)m->heads, (long long)p->q_heads);
    if (m->batch != p->batch || m->seqlen_q != p->seqlen_q || m->seqlen_k != p->seqlen_k)
        return fm_fail(FM_ERR_INVALID, "%s: mask is B=%lld, %lld x %lld but the problem is "
                       "B=%lld, %lld x %lld", who, (long long)m->batch, (long long)m->seqlen_q,
                       (long long)m->seqlen_k, (long long)p->batch, (long long)p->seqlen_q,
                       (long long)p->seqlen_k);
    return FM_OK;
}

static fm_status check_and_fill(const fm_problem *p, const fm_cuda_mask *m, fm_attn_params *kp)
{
    fm_clear_error();
    fm_status st = fm_cuda_check_problem("cuda", p, m);
    if (st != FM_OK) return st;
    const int64_t d = p->head_dim;
    if (d != 32 && d != 64 && d != 96 && d != 128 && d != 256)
        return fm_fail(FM_ERR_INVALID, "cuda: head_dim = %lld on device pointers must be 32, 64, "
                       "96, 128 or 256 (the host path pads other sizes)", (long long)d);
    if (p->dtype != FM_FLOAT16 && p->dtype != FM_BFLOAT16)
        return fm_fail(FM_ERR_INVALID, "cuda: dtype %s; the kernels compute in float16 or "
                       "bfloat16", fm_dtype_name(p->dtype));
    if (!(p->scale > 0) || p->scale > 3.0e38)
        return fm_fail(FM_ERR_INVALID, "cuda: scale = %g must be finite and > 0", p->scale);
    if (p->seqlen_q > FM_CUDA_MAX_SEQLEN || p->seqlen_k > FM_CUDA_MAX_SEQLEN ||
        p->q_heads > 65535 || p->batch > 65535)
        return fm_fail(FM_ERR_OVERFLOW, "cuda: Sq, Sk must fit int32 and Hq, B <= 65535 "
                       "(Sq=%lld Sk=%lld Hq=%lld B=%lld)", (long long)p->seqlen_q,
                       (long long)p->seqlen_k, (long long)p->q_heads, (long long)p->batch);
    memset(kp, 0, sizeof *kp);
    fm_cuda_fill_shape(kp, p, m);
    kp->live_per_kblock = (float)m->live_per_kblock;
    kp->scale = (float)p->scale;
    return FM_OK;
}

/* The kernels copy element tensors 16 bytes at a time (cp.async, TMA) and float32 ones 4 at a
 * time: a pointer off those boundaries would fault on the device (a sticky error that ends the
 * process's CUDA context), so it is refused here. cudaMalloc's pointers are 256-byte aligned;
 * an offset view into a tensor must keep the alignment. n element tensors, then the float32
 * ones (lse last). */
static fm_status check_alignment(const char *who, const char *const names[],
                                 const void *const ptrs[], int n_elem, int n_all)
{
    for (int i = 0; i < n_all; i++) {
        const uintptr_t a = i < n_elem ? 16 : 4;
        if ((uintptr_t)ptrs[i] & (a - 1))
            return fm_fail(FM_ERR_INVALID, "cuda %s: %s = %p is not %d-byte aligned (the kernels "
                           "copy %d bytes at a time; cudaMalloc's pointers are aligned)", who,
                           names[i], ptrs[i], (int)a, (int)a);
    }
    return FM_OK;
}

extern "C" fm_status fm_cuda_ladder_check(int step, int backward, int64_t head_dim)
{
    fm_clear_error();
    /* A wrong request is refused before any device is asked (so it is testable without one). */
    int unavailable = 0;
    const char *why = fm_ladder_refusal(step, backward, head_dim == 128 ? 128 : 0, &unavailable);
    if (why && !unavailable)
        return fm_fail(FM_ERR_INVALID, "cuda: %s step %d: %s (head_dim %lld)",
                       backward ? "backward" : "forward", step, why, (long long)head_dim);
    fm_status st = fm_cuda_available();
    if (st != FM_OK) return st;
    if (!why) return FM_OK;
    return fm_fail(FM_ERR_UNAVAILABLE, "cuda: %s step %d: %s", backward ? "backward" : "forward",
                   step, why);
}

/* Ladder steps 4 and 5 are the library's own kernels (mma.sync, wgmma), forced through the
 * kernel options; steps 1-3 are cuda/ladder/'s; step 0 runs what `opt` and the heuristics
 * choose. */
static fm_kernel_options ladder_options(int step, bool backward, const fm_kernel_options *opt)
{
    fm_kernel_options o;
    if (opt) o = *opt;
    else memset(&o, 0, sizeof o);
    if (step == 4 || step == 5) {
        const int32_t c = step == 4 ? FM_KERNEL_MMA : FM_KERNEL_WGMMA;
        if (backward) o.backward = c;
        else o.forward = c;
    }
    return o;
}

/* prepare() for ladder step `step` (0: the library's choice, `opt`), refusing a step that
 * cannot run this problem. */
static fm_status prepare_step(int step, bool backward, const fm_problem *p,
                              const fm_cuda_mask *mask, const fm_kernel_options *opt,
                              fm_attn_params *kp, fm_kernel_plan *plan)
{
    const fm_kernel_options o = ladder_options(step, backward, opt);
    fm_status st = prepare(p, mask, &o, backward, kp, plan);
    if (st == FM_OK && step != 0) st = fm_cuda_ladder_check(step, backward, p->head_dim);
    return st;
}

/* The forward of ladder step `step` (0: the library's choice, `opt`). */
static fm_status forward_step(int step, const fm_problem *p, const fm_cuda_mask *mask,
                              const void *q, const void *k, const void *v, void *out, float *lse,
                              const fm_kernel_options *opt, void *stream)
{
    fm_attn_params kp;
    fm_kernel_plan plan;
    fm_status st = prepare_step(step, false, p, mask, opt, &kp, &plan);
    if (st != FM_OK) return st;
    if (!q || !k || !v || !out || !lse)
        return fm_fail(FM_ERR_INVALID, "cuda forward: NULL q, k, v, out or lse");
    static const char *const names[] = {"q", "k", "v", "out", "lse"};
    const void *const ptrs[] = {q, k, v, out, lse};
    st = check_alignment("forward", names, ptrs, 4, 5);
    if (st != FM_OK) return st;
    kp.q = q, kp.k = k, kp.v = v, kp.out = out, kp.lse = lse;
    const bool ladder = step >= 1 && step <= 3;
    cudaError_t err = ladder ? fm_ladder_launch_forward(step, kp, p->dtype, (cudaStream_t)stream)
                             : fm_cuda_launch_forward(kp, p->dtype, plan, (cudaStream_t)stream);
    return err == cudaSuccess ? FM_OK : cuda_fail(err, "forward kernel launch");
}

extern "C" fm_status fm_cuda_forward(const fm_problem *p, const fm_cuda_mask *mask, const void *q,
                                     const void *k, const void *v, void *out, float *lse,
                                     const fm_kernel_options *opt, void *stream)
{
    return forward_step(0, p, mask, q, k, v, out, lse, opt, stream);
}

extern "C" fm_status fm_cuda_forward_step(int step, const fm_problem *p,
                                          const fm_cuda_mask *mask, const void *q, const void *k,
                                          const void *v, void *out, float *lse, void *stream)
{
    return forward_step(step, p, mask, q, k, v, out, lse, NULL, stream);
}

/* The backward of ladder step `step`, as forward_step. */
static fm_status backward_step(int step, const fm_problem *p, const fm_cuda_mask *mask,
                               const void *q, const void *k, const void *v, const void *out,
                               const float *lse, const void *dout, void *dq, void *dk, void *dv,
                               const fm_kernel_options *opt, void *stream)
{
    fm_attn_params kp;
    fm_kernel_plan plan;
    fm_status st = prepare_step(step, true, p, mask, opt, &kp, &plan);
    if (st != FM_OK) return st;
    /* ladder steps 1 and 2 sum dQ in a fixed order and need no accumulator */
    const bool ladder = step == 1 || step == 2;
    if (ladder) plan.deterministic = true;
    if (!q || !k || !v || !out || !lse || !dout || !dq || !dk || !dv)
        return fm_fail(FM_ERR_INVALID, "cuda backward: NULL tensor pointer");
    static const char *const names[] = {"q", "k", "v", "out", "dout", "dq", "dk", "dv", "lse"};
    const void *const ptrs[] = {q, k, v, out, dout, dq, dk, dv, lse};
    st = check_alignment("backward", names, ptrs, 8, 9);
    if (st != FM_OK) return st;
    kp.q = q, kp.k = k, kp.v = v, kp.out_in = out, kp.lse_in = lse, kp.dout = dout;
    kp.dq = dq, kp.dk = dk, kp.dv = dv;
    cudaStream_t s = (cudaStream_t)stream;
    /* Delta = rowsum(dO * O): a float32 workspace from the stream-ordered allocator. */
    const size_t rows = fm_problem_lse_elems(p);
    cudaError_t err = cudaMallocAsync((void **)&kp.delta, rows * sizeof(float), s);
    if (err != cudaSuccess)
        return fm_fail(FM_ERR_NOMEM, "cuda backward: %zu-row Delta workspace: %s", rows,
                       cudaGetErrorString(err));
    /* Unless the plan is deterministic (FM_FLAG_DETERMINISTIC or opt->deterministic), dQ is
     * summed in float32 by the dK/dV kernel, with atomics or bulk reductions (fewer matrix
     * products); else by a separate kernel in a fixed order. Sized for either layout of the
     * accumulator (kernels.h). */
    if (!plan.deterministic) {
        const size_t n = fm_cuda_dq_accum_elems(kp);
        err = cudaMallocAsync((void **)&kp.dq_accum, n * sizeof(float), s);
        if (err == cudaSuccess) err = cudaMemsetAsync(kp.dq_accum, 0, n * sizeof(float), s);
        if (err != cudaSuccess) {
            cudaFreeAsync(kp.delta, s);
            return fm_fail(FM_ERR_NOMEM, "cuda backward: %zu-element dQ accumulator: %s", n,
                           cudaGetErrorString(err));
        }
    }
    err = ladder ? fm_ladder_launch_backward(step, kp, p->dtype, s)
                 : fm_cuda_launch_backward(kp, p->dtype, plan, s);
    cudaError_t err_free = cudaFreeAsync(kp.delta, s);
    if (kp.dq_accum && err_free == cudaSuccess) err_free = cudaFreeAsync(kp.dq_accum, s);
    if (err != cudaSuccess) return cuda_fail(err, "backward kernel launch");
    if (err_free != cudaSuccess) return cuda_fail(err_free, "cudaFreeAsync");
    return FM_OK;
}

extern "C" fm_status fm_cuda_backward(const fm_problem *p, const fm_cuda_mask *mask,
                                      const void *q, const void *k, const void *v,
                                      const void *out, const float *lse, const void *dout,
                                      void *dq, void *dk, void *dv,
                                      const fm_kernel_options *opt, void *stream)
{
    return backward_step(0, p, mask, q, k, v, out, lse, dout, dq, dk, dv, opt, stream);
}

extern "C" fm_status fm_cuda_backward_step(int step, const fm_problem *p,
                                           const fm_cuda_mask *mask, const void *q, const void *k,
                                           const void *v, const void *out, const float *lse,
                                           const void *dout, void *dq, void *dk, void *dv,
                                           void *stream)
{
    return backward_step(step, p, mask, q, k, v, out, lse, dout, dq, dk, dv, NULL, stream);
}
