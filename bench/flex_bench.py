#!/usr/bin/env python3
"""bench/flex_bench.py — libflashmask's CUDA kernels against PyTorch FlexAttention, in one
process, on the same masks and the same card (docs/spec.md §7).

Masks come from OUR builders (libflashmask through ctypes: fm_mask_params_default +
fm_mask_build); FlexAttention receives them as a mask_mod over the same bounds tensor (element
rule of docs/spec.md §2) and a block mask from create_block_mask. Both sides run bf16 (or fp16) on the
same q, k, v, dO tensors; times are medians of triton.testing.do_bench (CUDA events). TFLOP/s
count allowed pairs only (fm_problem_flops: 4*D per allowed pair forward, 2.5x backward). A bf16
matmul (8192^3) is timed in the same run as the card's ceiling.

Layer: tools (benchmark), on top of the cuda layer. Run on a GPU host, e.g.
    python3 bench/flex_bench.py --lib build/libflashmask.so --out bench/results/x.json
"""
import argparse
import ctypes as C
import datetime
import json
import math
import platform
import statistics
import subprocess
import sys

import torch
import torch._functorch.config
import numpy as np
import triton
from torch.nn.attention.flex_attention import create_block_mask, flex_attention

FAMILIES = ["full", "causal", "sliding_window", "causal_document", "document",
            "shared_question", "global_sliding_window", "causal_blockwise", "prefix_lm_causal",
            "prefix_lm_document", "qk_sparse", "random_eviction"]
CAUSAL_NONE, CAUSAL_BOTTOM_RIGHT, CAUSAL_TOP_LEFT = 0, 1, 2
FLOAT16, BFLOAT16 = 2, 3


class Problem(C.Structure):  # fm_problem (flashmask/core.h)
    _fields_ = [("batch", C.c_int64), ("q_heads", C.c_int64), ("kv_heads", C.c_int64),
                ("seqlen_q", C.c_int64), ("seqlen_k", C.c_int64), ("head_dim", C.c_int64),
                ("scale", C.c_double), ("dtype", C.c_int), ("flags", C.c_uint)]


class Mask(C.Structure):  # fm_mask (flashmask/masks.h)
    _fields_ = [("batch", C.c_int64), ("heads", C.c_int64), ("seqlen_q", C.c_int64),
                ("seqlen_k", C.c_int64), ("causal", C.c_int), ("bounds", C.POINTER(C.c_int32))]


class CudaMask(C.Structure):  # fm_cuda_mask (flashmask/cuda.h)
    _fields_ = [("batch", C.c_int64), ("heads", C.c_int64), ("seqlen_q", C.c_int64),
                ("seqlen_k", C.c_int64), ("causal", C.c_int), ("block_k", C.c_int64),
                ("n_blocks", C.c_int64), ("bounds", C.c_void_p), ("summary", C.c_void_p),
                ("live_per_kblock", C.c_double)]


class KernelOptions(C.Structure):  # fm_kernel_options (flashmask/cuda.h)
    _fields_ = [("forward", C.c_int32), ("backward", C.c_int32), ("fwd_shape", C.c_int32),
                ("bwd_warpgroups", C.c_int32), ("deterministic", C.c_int32)]


class Lib:
    """The few libflashmask calls the benchmark needs."""

    def __init__(self, path):
        self.so = C.CDLL(path)
        so = self.so
        so.fm_last_error.restype = C.c_char_p
        so.fm_problem_flops.restype = C.c_double
        so.fm_family_from_name.argtypes = [C.c_char_p, C.POINTER(C.c_int)]
        so.fm_mask_build.argtypes = [C.POINTER(Mask), C.c_void_p, C.c_int64, C.c_int64,
                                     C.c_int64, C.c_int64, C.c_int]
        so.fm_cuda_forward.argtypes = [C.POINTER(Problem), C.POINTER(CudaMask)] + \
            [C.c_void_p] * 5 + [C.POINTER(KernelOptions), C.c_void_p]
        so.fm_cuda_backward.argtypes = [C.POINTER(Problem), C.POINTER(CudaMask)] + \
            [C.c_void_p] * 9 + [C.POINTER(KernelOptions), C.c_void_p]
        so.fm_kernel_options_parse.argtypes = [C.c_char_p, C.POINTER(KernelOptions)]

    def kernel_options(self, spec):
        """fm_kernel_options from a --kernel spec (cuda/options.c reads it)."""
        o = KernelOptions()
        self.check(self.so.fm_kernel_options_parse(spec.encode(), C.byref(o)), "--kernel")
        return o

    def check(self, status, what):
        if status != 0:
            raise RuntimeError(f"{what}: {self.so.fm_last_error().decode()}")

    def build_mask(self, family, batch, heads, seqlen):
        fam = C.c_int()
        self.check(self.so.fm_family_from_name(family.encode(), C.byref(fam)), family)
        params = C.create_string_buffer(1024)  # fm_mask_params, generously sized
        self.check(self.so.fm_mask_params_default(params, fam, C.c_int64(seqlen)), "params")
        mask = Mask()
        self.check(self.so.fm_mask_build(C.byref(mask), params, batch, heads, seqlen, seqlen,
                                         CAUSAL_BOTTOM_RIGHT), "build " + family)
        self.so.fm_mask_params_free(params)
        return mask


def bench_ms(fn):
    return triton.testing.do_bench(fn, warmup=50, rep=300, return_mode="median")


def matmul_tflops():
    n = 8192
    a = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    ms = bench_ms(lambda: a @ b)
    return 2 * n ** 3 / ms / 1e9


# FlexAttention's mask_mod reads these module-level tensors, so one compiled kernel serves
# every family of a shape (dynamo guards on shapes, not values).
G = {}


def mask_mod(b, h, q_idx, kv_idx):
    hm = h // G["hdiv"]
    lts = G["bounds"][b, hm, kv_idx, 0]
    lte = G["bounds"][b, hm, kv_idx, 1]
    uts = G["bounds"][b, hm, kv_idx, 2]
    ute = G["bounds"][b, hm, kv_idx, 3]
    masked = ((q_idx >= lts) & (q_idx < lte)) | ((q_idx >= uts) & (q_idx < ute))
    masked = masked | ((G["causal"] != 0) & (kv_idx > q_idx + G["offset"]))
    return ~masked


def flex_side(row, lib, mask, heads, mheads, per_head, seqlen, q, k, v, do, out, fwd_flops,
              bwd_flops, flex_compiled):
    """FlexAttention on the same mask (mask_mod over our bounds) and the same tensors."""
    nb = mask.batch * mask.heads * seqlen * 4
    host = np.ctypeslib.as_array(mask.bounds, shape=(nb,)).copy()
    G["bounds"] = torch.from_numpy(host).to("cuda").view(1, mheads, seqlen, 4)
    G["hdiv"] = heads // mheads
    G["causal"] = torch.tensor(int(mask.causal != CAUSAL_NONE), device="cuda")
    G["offset"] = torch.tensor(0, device="cuda")  # Sq == Sk: both alignments agree
    # _compile=True: the mask is reduced to blocks without materialising B*H*S*S
    # (the eager path needs 128 GiB for 16 per-head masks at S = 32K).
    bm = create_block_mask(mask_mod, 1, heads if per_head else None, seqlen, seqlen,
                           device="cuda", BLOCK_SIZE=128, _compile=True)
    qf, kf, vf = (t.detach().clone().requires_grad_(True) for t in (q, k, v))
    fo = flex_compiled(qf, kf, vf, block_mask=bm)
    # Same function: our forward against FlexAttention's, on identical inputs.
    row["max_abs_diff_vs_flex"] = (fo.float() - out.float()).abs().max().item()
    row["flex_fwd_ms"] = bench_ms(lambda: flex_compiled(qf, kf, vf, block_mask=bm))
    row["flex_bwd_ms"] = bench_ms(lambda: fo.backward(do, retain_graph=True))
    row["flex_fwd_tflops"] = fwd_flops / row["flex_fwd_ms"] / 1e9
    row["flex_bwd_tflops"] = bwd_flops / row["flex_bwd_ms"] / 1e9
    row["ratio_fwd"] = row["ours_fwd_tflops"] / row["flex_fwd_tflops"]
    row["ratio_bwd"] = row["ours_bwd_tflops"] / row["flex_bwd_tflops"]


def run_config(lib, heads, seqlen, dim, families, dtype, do_flex, flex_compiled, results,
               save=None, flags=0, kernel="auto"):
    torch.manual_seed(0)
    tdtype = torch.bfloat16 if dtype == BFLOAT16 else torch.float16
    shape = (1, heads, seqlen, dim)
    q, k, v, do = (torch.randn(shape, device="cuda", dtype=tdtype) for _ in range(4))
    out = torch.empty_like(q)
    lse = torch.empty((1, heads, seqlen), device="cuda", dtype=torch.float32)
    dq, dk, dv = torch.empty_like(q), torch.empty_like(k), torch.empty_like(v)
    prob = Problem(1, heads, heads, seqlen, seqlen, dim, 1.0 / math.sqrt(dim), dtype, flags)
    stream = torch.cuda.current_stream().cuda_stream
    kopt = lib.kernel_options(kernel)
    for fam in families:
        per_head = fam == "random_eviction"  # differs per (b, head)
        mheads = heads if per_head else 1
        mask = lib.build_mask(fam, 1, mheads, seqlen)
        fwd_flops = lib.so.fm_problem_flops(C.byref(prob), C.byref(mask), 0)
        bwd_flops = lib.so.fm_problem_flops(C.byref(prob), C.byref(mask), 1)
        dmask = CudaMask()
        lib.check(lib.so.fm_cuda_mask_upload(C.byref(mask), C.byref(dmask)), "upload")
        ptr = lambda t: C.c_void_p(t.data_ptr())

        def ours_fwd():
            lib.check(lib.so.fm_cuda_forward(C.byref(prob), C.byref(dmask), ptr(q), ptr(k),
                                             ptr(v), ptr(out), ptr(lse), C.byref(kopt),
                                             C.c_void_p(stream)), "forward")

        def ours_bwd():
            lib.check(lib.so.fm_cuda_backward(C.byref(prob), C.byref(dmask), ptr(q), ptr(k),
                                              ptr(v), ptr(out), ptr(lse), ptr(do), ptr(dq),
                                              ptr(dk), ptr(dv), C.byref(kopt), C.c_void_p(stream)),
                      "backward")

        ours_fwd()
        torch.cuda.synchronize()
        row = {"family": fam, "heads": heads, "seqlen": seqlen, "head_dim": dim,
               "fwd_flops": fwd_flops, "bwd_flops": bwd_flops, "kernel": kernel}
        # The fraction of 64 x 64 tiles not fully masked (counted at upload), which picks the
        # Hopper backward's block shape (docs/performance-cuda.md).
        row["live_tile_fraction"] = dmask.live_per_kblock / ((seqlen + 63) // 64)
        row["ours_fwd_ms"] = bench_ms(ours_fwd)
        row["ours_bwd_ms"] = bench_ms(ours_bwd)
        row["ours_fwd_tflops"] = fwd_flops / row["ours_fwd_ms"] / 1e9
        row["ours_bwd_tflops"] = bwd_flops / row["ours_bwd_ms"] / 1e9
        if do_flex:
            try:
                flex_side(row, lib, mask, heads, mheads, per_head, seqlen, q, k, v, do, out,
                          fwd_flops, bwd_flops, flex_compiled)
            except Exception as e:  # recorded, not fatal: the other rows stand
                row["flex_error"] = f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"
                print("flex failed:", row["flex_error"], flush=True)
                torch.cuda.empty_cache()
        lib.so.fm_cuda_mask_free(C.byref(dmask))
        lib.so.fm_mask_free(C.byref(mask))
        results.append(row)
        print(json.dumps(row), flush=True)
        if save:
            save()


def geomean(xs):
    return math.exp(statistics.fmean(math.log(x) for x in xs)) if xs else float("nan")


def write_json(path, mm, mm_after, summary, results):
    try:
        smi = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version",
                              "--format=csv,noheader"], capture_output=True, text=True).stdout
    except OSError:
        smi = ""
    doc = {"device": torch.cuda.get_device_name(), "nvidia_smi": smi.strip(),
           "date": datetime.datetime.now(datetime.timezone.utc).isoformat(),
           "torch": torch.__version__, "triton": triton.__version__,
           "cuda": torch.version.cuda, "python": platform.python_version(),
           "command": " ".join(sys.argv), "dtype": "bfloat16", "batch": 1,
           "timing": "triton.testing.do_bench median (warmup 50 ms, rep 300 ms), ms",
           "flops": "allowed pairs only: 4*D per pair forward, 2.5x backward",
           "matmul_bf16_tflops_before_after": [mm, mm_after], "summary": summary,
           "results": results}
    with open(path, "w") as f:
        json.dump(doc, f, indent=1)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--lib", required=True, help="path to libflashmask.so (built with CUDA)")
    ap.add_argument("--out", help="write the raw results here (JSON), updated after every row")
    ap.add_argument("--configs", default="16x8192x128,16x32768x128,32x8192x64",
                    help="comma list of HEADSxSEQLENxDIM")
    ap.add_argument("--families", default=",".join(FAMILIES))
    ap.add_argument("--no-flex", action="store_true", help="time only our kernels")
    ap.add_argument("--deterministic", action="store_true",
                    help="our backward with FM_FLAG_DETERMINISTIC (dQ without atomics)")
    ap.add_argument("--kernel", default="auto",
                    help="our kernels: auto (the heuristics), mma, wgmma, or a comma list of "
                         "fwd=..., bwd=..., shape=8x1|4x2|8x2, wgs=1|2 (fm_kernel_options)")
    args = ap.parse_args()

    # Timing backward repeatedly needs retain_graph=True, which compiled graphs with donated
    # buffers refuse.
    torch._functorch.config.donated_buffer = False
    lib = Lib(args.lib)
    lib.check(lib.so.fm_cuda_available(), "cuda")
    flex_compiled = None if args.no_flex else torch.compile(flex_attention, dynamic=False)
    results = []
    mm = matmul_tflops()
    print(f"bf16 matmul 8192^3: {mm:.0f} TFLOP/s", flush=True)
    save = (lambda: write_json(args.out, mm, None, {}, results)) if args.out else None
    for cfg in args.configs.split(","):
        h, s, d = (int(x) for x in cfg.split("x"))
        run_config(lib, h, s, d, args.families.split(","), BFLOAT16, not args.no_flex,
                   flex_compiled, results, save, 1 if args.deterministic else 0, args.kernel)
        torch.cuda.empty_cache()
    mm_after = matmul_tflops()

    nan = float("nan")
    print(f"\nbf16 matmul: {mm:.0f} (before) / {mm_after:.0f} (after) TFLOP/s")
    print(f"{'config':>14} {'family':>22} {'ours fwd':>9} {'flex fwd':>9} {'ratio':>6} "
          f"{'ours bwd':>9} {'flex bwd':>9} {'ratio':>6}")
    for r in results:
        cfg = f"{r['heads']}x{r['seqlen']}x{r['head_dim']}"
        print(f"{cfg:>14} {r['family']:>22} {r['ours_fwd_tflops']:9.1f} "
              f"{r.get('flex_fwd_tflops', nan):9.1f} {r.get('ratio_fwd', nan):6.2f} "
              f"{r['ours_bwd_tflops']:9.1f} {r.get('flex_bwd_tflops', nan):9.1f} "
              f"{r.get('ratio_bwd', nan):6.2f}")
    summary = {}
    for cfg in args.configs.split(","):
        h, s, d = (int(x) for x in cfg.split("x"))
        rows = [r for r in results if (r["heads"], r["seqlen"], r["head_dim"]) == (h, s, d)]
        rated = [r for r in rows if "ratio_fwd" in r]
        if rated:
            summary[cfg] = {"families_compared": len(rated),
                            "geomean_ratio_fwd": geomean([r["ratio_fwd"] for r in rated]),
                            "geomean_ratio_bwd": geomean([r["ratio_bwd"] for r in rated]),
                            "min_ratio_fwd": min(r["ratio_fwd"] for r in rated),
                            "min_ratio_bwd": min(r["ratio_bwd"] for r in rated)}
        full = [r for r in rows if r["family"] == "full"]
        if full:
            summary.setdefault(cfg, {})["full_fwd_fraction_of_matmul"] = \
                full[0]["ours_fwd_tflops"] / mm
        if cfg in summary:
            print(cfg, json.dumps(summary[cfg]))
    if args.out:
        write_json(args.out, mm, mm_after, summary, results)


if __name__ == "__main__":
    sys.exit(main())
