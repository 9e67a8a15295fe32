#!/usr/bin/env python3
"""bench/ladder_bench.py — times every step of the CUDA kernel ladder (cuda/ladder/,
docs/cuda-ladder.md) in one process, on the same tensors and masks, and writes the rows as JSON.

For each configuration (heads x seqlen x head_dim, batch 1, Sq = Sk, bfloat16) and each mask
family (libflashmask's own builders with their default parameters, causal bottom-right), it runs
forward steps 1..5 and backward steps 1, 2, 4, 5 through fm_cuda_forward_step /
fm_cuda_backward_step on torch's stream, and records the median time of repeated calls (CUDA
events around each call, one warm-up call first) and TFLOP/s from allowed pairs
(fm_problem_flops: 4 D per allowed pair forward, 2.5 times that backward). A step that cannot
run here (step 5 off Hopper or at D != 128) is recorded with its reason. Each forward step's
output is compared with step 4's (max |difference|, a sanity figure; correctness is
tests/cuda/test_ladder's job). The slow steps (1 and 2) run only on configurations whose
seqlen is at most --slow-max-seqlen; the table in the docs says which shape each row is.

Layer: tools (benchmark), on top of the cuda layer. Run on a GPU host:
    python3 bench/ladder_bench.py --lib build-gpu/libflashmask.so --out $OUT/ladder.json
"""
import argparse
import ctypes as C
import datetime
import json
import math
import os
import platform
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from flex_bench import BFLOAT16, FLOAT16, CudaMask, Lib, Problem  # noqa: E402  (shared ctypes)

FORWARD_STEPS = [1, 2, 3, 4, 5]
BACKWARD_STEPS = [1, 2, 4, 5]
SLOW_STEPS = {1, 2}


def bind_ladder(lib):
    so = lib.so
    so.fm_cuda_ladder_check.argtypes = [C.c_int, C.c_int, C.c_int64]
    so.fm_cuda_forward_step.argtypes = [C.c_int, C.POINTER(Problem), C.POINTER(CudaMask)] + \
        [C.c_void_p] * 6
    so.fm_cuda_backward_step.argtypes = [C.c_int, C.POINTER(Problem), C.POINTER(CudaMask)] + \
        [C.c_void_p] * 10


def time_ms(fn, min_total_ms, max_calls):
    """Median of per-call CUDA-event times after one warm-up call."""
    fn()
    torch.cuda.synchronize()
    times, total = [], 0.0
    while len(times) < max_calls and (total < min_total_ms or len(times) < 3):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        b.synchronize()
        t = a.elapsed_time(b)
        times.append(t)
        total += t
    return statistics.median(times), len(times)


def run_config(lib, heads, seqlen, dim, families, args, rows, save):
    torch.manual_seed(0)
    dtype = BFLOAT16 if args.dtype == "bfloat16" else FLOAT16
    tdtype = torch.bfloat16 if dtype == BFLOAT16 else torch.float16
    shape = (1, heads, seqlen, dim)
    q, k, v, do = (torch.randn(shape, device="cuda", dtype=tdtype) for _ in range(4))
    out, ref_out = torch.empty_like(q), torch.empty_like(q)
    lse = torch.empty((1, heads, seqlen), device="cuda", dtype=torch.float32)
    dq, dk, dv = torch.empty_like(q), torch.empty_like(k), torch.empty_like(v)
    prob = Problem(1, heads, heads, seqlen, seqlen, dim, 1.0 / math.sqrt(dim), dtype, 0)
    stream = C.c_void_p(torch.cuda.current_stream().cuda_stream)
    ptr = lambda t: C.c_void_p(t.data_ptr())  # noqa: E731
    for fam in families:
        mask, _ = lib.build_mask(fam, 1, 1, seqlen)
        flops = [lib.so.fm_problem_flops(C.byref(prob), C.byref(mask), b) for b in (0, 1)]
        dmask = CudaMask()
        lib.check(lib.so.fm_cuda_mask_upload(C.byref(mask), C.byref(dmask)), "upload")

        def fwd(step, o=out):
            lib.check(lib.so.fm_cuda_forward_step(step, C.byref(prob), C.byref(dmask), ptr(q),
                                                  ptr(k), ptr(v), ptr(o), ptr(lse), stream),
                      f"forward step {step}")

        def bwd(step):
            lib.check(lib.so.fm_cuda_backward_step(step, C.byref(prob), C.byref(dmask), ptr(q),
                                                   ptr(k), ptr(v), ptr(out), ptr(lse), ptr(do),
                                                   ptr(dq), ptr(dk), ptr(dv), stream),
                      f"backward step {step}")

        fwd(4, ref_out)  # step 4's output: the sanity comparison for every forward step
        for direction, steps in (("forward", FORWARD_STEPS), ("backward", BACKWARD_STEPS)):
            if direction == "backward":
                fwd(0)  # the backward steps all read the library's own O and LSE
            for step in steps:
                row = {"direction": direction, "step": step, "family": fam, "batch": 1,
                       "heads": heads, "seqlen": seqlen, "head_dim": dim, "dtype": args.dtype,
                       "flops": flops[direction == "backward"]}
                if step in SLOW_STEPS and seqlen > args.slow_max_seqlen:
                    continue
                if lib.so.fm_cuda_ladder_check(step, direction == "backward", dim) != 0:
                    row["skipped"] = lib.so.fm_last_error().decode()
                else:
                    fn = (lambda s=step: fwd(s)) if direction == "forward" else \
                        (lambda s=step: bwd(s))
                    try:
                        ms, calls = time_ms(fn, args.min_ms, args.max_calls)
                        row.update(ms=ms, calls=calls, tflops=row["flops"] / ms / 1e9)
                        if direction == "forward":
                            row["max_abs_diff_vs_step4"] = \
                                (out.float() - ref_out.float()).abs().max().item()
                    except RuntimeError as e:
                        row["error"] = str(e)
                rows.append(row)
                print(json.dumps(row), flush=True)
                save()
        lib.so.fm_cuda_mask_free(C.byref(dmask))
        lib.so.fm_mask_free(C.byref(mask))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--lib", required=True, help="path to libflashmask.so")
    ap.add_argument("--out", required=True, help="JSON file to write")
    ap.add_argument("--configs", default="16x2048x128,16x2048x64,16x8192x128,16x8192x64",
                    help="comma-separated HEADSxSEQLENxHEAD_DIM (batch 1)")
    ap.add_argument("--families", default="full,causal,causal_document")
    ap.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float16"])
    ap.add_argument("--slow-max-seqlen", type=int, default=2048,
                    help="steps 1 and 2 run only where seqlen <= this (default 2048)")
    ap.add_argument("--min-ms", type=float, default=200.0, help="time each step this long")
    ap.add_argument("--max-calls", type=int, default=50)
    args = ap.parse_args()

    lib = Lib(args.lib)
    bind_ladder(lib)
    rows = []
    meta = {"what": "cuda kernel ladder, every step in one process (bench/ladder_bench.py)",
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "device": torch.cuda.get_device_name(), "torch": torch.__version__,
            "host": platform.node(), "args": vars(args),
            "timing": "median of CUDA-event times per call after one warm-up call"}

    def save():
        tmp = args.out + ".tmp"
        with open(tmp, "w") as f:
            json.dump({"meta": meta, "rows": rows}, f, indent=1)
        os.replace(tmp, args.out)

    t0 = time.time()
    for cfg in args.configs.split(","):
        heads, seqlen, dim = (int(x) for x in cfg.split("x"))
        run_config(lib, heads, seqlen, dim, args.families.split(","), args, rows, save)
    meta["seconds"] = time.time() - t0
    save()


if __name__ == "__main__":
    main()
