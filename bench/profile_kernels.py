#!/usr/bin/env python3
"""bench/profile_kernels.py — one forward and one backward of our CUDA kernels, bf16, B = 1, for
Nsight Compute to profile (bench/profile_kernels.sh runs it under ncu). Nothing is timed here:
the launches exist so that the profiler can read the hardware counters of exactly the kernels
the benchmark times, on the same masks (flex_bench.Lib builds them with our builders).

    python3 bench/profile_kernels.py --lib build-gpu/libflashmask.so --config 16x8192x128 \
        --families full,causal_document [--kernel auto]

Layer: tools (benchmark support), on top of the cuda layer.
"""
import argparse
import ctypes as C
import math
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from flex_bench import BFLOAT16, CudaMask, Lib, Problem, parse_config  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--lib", required=True)
    ap.add_argument("--config", default="16x8192x128", help="HQxSxD or HQ:HKxSxD")
    ap.add_argument("--families", default="full")
    ap.add_argument("--kernel", default="auto", help="fm_kernel_options spec (--kernel)")
    args = ap.parse_args()
    lib = Lib(args.lib)
    lib.check(lib.so.fm_cuda_available(), "cuda")
    heads, kv_heads, s, d = parse_config(args.config)
    torch.manual_seed(0)
    q, do = (torch.randn((1, heads, s, d), device="cuda", dtype=torch.bfloat16) for _ in range(2))
    k, v = (torch.randn((1, kv_heads, s, d), device="cuda", dtype=torch.bfloat16)
            for _ in range(2))
    out, dq = torch.empty_like(q), torch.empty_like(q)
    dk, dv = torch.empty_like(k), torch.empty_like(v)
    lse = torch.empty((1, heads, s), device="cuda", dtype=torch.float32)
    prob = Problem(1, heads, kv_heads, s, s, d, 1.0 / math.sqrt(d), BFLOAT16, 0)
    kopt = lib.kernel_options(args.kernel)
    stream = C.c_void_p(torch.cuda.current_stream().cuda_stream)
    ptr = lambda t: C.c_void_p(t.data_ptr())
    for fam in args.families.split(","):
        mask, _ = lib.build_mask(fam, 1, 1, s)
        dmask = CudaMask()
        lib.check(lib.so.fm_cuda_mask_upload(C.byref(mask), C.byref(dmask)), "upload")
        torch.cuda.nvtx.range_push(fam)
        lib.check(lib.so.fm_cuda_forward(C.byref(prob), C.byref(dmask), ptr(q), ptr(k), ptr(v),
                                         ptr(out), ptr(lse), C.byref(kopt), stream), "forward")
        lib.check(lib.so.fm_cuda_backward(C.byref(prob), C.byref(dmask), ptr(q), ptr(k), ptr(v),
                                          ptr(out), ptr(lse), ptr(do), ptr(dq), ptr(dk), ptr(dv),
                                          C.byref(kopt), stream), "backward")
        torch.cuda.synchronize()
        torch.cuda.nvtx.range_pop()
        lib.so.fm_cuda_mask_free(C.byref(dmask))
        lib.so.fm_mask_free(C.byref(mask))
        print(f"{fam}: forward and backward launched", flush=True)


if __name__ == "__main__":
    main()
