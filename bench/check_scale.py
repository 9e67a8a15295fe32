#!/usr/bin/env python3
"""bench/check_scale.py — how long judging a candidate takes at a real size (default S = 8192,
H = 8, D = 128, B = 1, bfloat16, forward and backward, the float64 reference included), by the
paths a user takes from Python: NumPy arrays, torch CPU tensors, torch CUDA tensors
(flashmask.tensors.check, flashmask.testing's building blocks).

    python3 bench/check_scale.py --input numpy --family causal          # CPU oracle
    python3 bench/check_scale.py --input torch-cuda --oracle reference-cuda   # GPU host

The candidate is one of our implementations, timed apart from the judgement: the float32 'cpu'
layer for host inputs, the CUDA kernels (flashmask.torch.attention, autograd) for CUDA tensors.
Prints one JSON object per run: candidate_s, check_s (wall), check_cpu_s (this process's CPU
time: on a shared machine it says more than the wall time), passed, and with --phases the
judgement's parts timed apart on the same inputs (wall and CPU): reference_s (the float64
reference forward and backward, as fm.reference computes it: the dense backend where it fits,
or the GPU's with --oracle reference-cuda), naive_s (the naive computation in X); the derived
rule's bounds are most of the rest. The derived rule runs the naive computation only where the
inputs could overflow X (docs/oracle.md §2.5): naive_computed says whether it ran; --naive
forces it (the check as it was before that skip).
Layer: tools (benchmark), over the Python package.
"""
import argparse
import json
import os
import platform
import resource
import time

import numpy as np

import flashmask as fm
from flashmask import tensors
from flashmask.check import ORACLES


def cpu_s():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def timed(f):
    t, c = time.perf_counter(), cpu_s()
    res = f()
    return res, time.perf_counter() - t, cpu_s() - c


def inputs(a, rng):
    shape = (a.batch, a.heads, a.seqlen, a.head_dim)
    return [fm.round_to(rng.standard_normal(shape), a.dtype) for _ in range(4)]


def run(a):
    rng = np.random.default_rng(a.seed)
    mask = fm.build(a.family, batch=a.batch, heads=1, seqlen_q=a.seqlen)
    q, k, v, do = inputs(a, rng)
    if a.input == "numpy":
        def cand():
            out, lse = fm.forward(q, k, v, mask, impl="cpu")
            dq, dk, dv = fm.backward(q, k, v, out, lse, do, mask, impl="cpu")
            return {"out": out, "lse": lse, "dq": dq, "dk": dk, "dv": dv}
        args = (q, k, v, do)
    else:
        import torch
        from flashmask import torch as ft
        dev = "cuda" if a.input == "torch-cuda" else "cpu"
        tdt = getattr(torch, a.dtype)
        tq, tk, tv, tdo = (torch.tensor(x, dtype=tdt, device=dev) for x in (q, k, v, do))
        impl = None if dev == "cuda" else "cpu"

        def cand():
            qq, kk, vv = (x.detach().requires_grad_() for x in (tq, tk, tv))
            out, lse = ft.attention(qq, kk, vv, mask, return_lse=True, impl=impl)
            out.backward(tdo)
            if dev == "cuda":
                torch.cuda.synchronize()
            return {"out": out, "lse": lse, "dq": qq.grad, "dk": kk.grad, "dv": vv.grad}
        args = (tq, tk, tv, tdo)
    candidate, cand_s, _ = timed(cand)
    rep, check_s, check_cpu = timed(lambda: tensors.check(*args, mask, candidate, a.dtype,
                                                          oracle=a.oracle, naive=a.naive))
    res = {"input": a.input, "family": a.family, "B": a.batch, "H": a.heads, "S": a.seqlen,
           "D": a.head_dim, "dtype": a.dtype, "oracle": a.oracle or "auto",
           "candidate_s": round(cand_s, 2), "check_s": round(check_s, 2),
           "check_cpu_s": round(check_cpu, 2), "passed": rep.passed,
           "cpus": os.cpu_count(), "machine": platform.node(),
           "worst_ratio": max(t["ratio"] for t in rep.tensors.values()),
           "naive_computed": all(t["naive_computed"] for t in rep.tensors.values())}
    if a.phases:
        impl = a.oracle if a.oracle == "reference-cuda" else "reference"
        for name, f in (("reference", lambda: fm.reference(q, k, v, do, mask, impl=impl)),
                        ("naive", lambda: fm.naive(q, k, v, do, mask, a.dtype))):
            _, wall, cpu = timed(f)
            res[name + "_s"], res[name + "_cpu_s"] = round(wall, 2), round(cpu, 2)
    if not rep.passed:
        res["report"] = rep.table()
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--input", choices=("numpy", "torch", "torch-cuda"), default="numpy")
    ap.add_argument("--family", action="append", help="mask family (repeatable; default full "
                    "and causal)")
    ap.add_argument("--seqlen", type=int, default=8192)
    ap.add_argument("--heads", type=int, default=8)
    ap.add_argument("--head-dim", type=int, default=128)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--dtype", default="bfloat16", choices=("float16", "bfloat16"))
    ap.add_argument("--oracle", choices=ORACLES, default=None,
                    help="who computes the float64 reference (default: the GPU for CUDA "
                    "tensors where it runs, else the CPU)")
    ap.add_argument("--phases", action="store_true", help="also time the reference and the "
                    "naive computation alone")
    ap.add_argument("--naive", action="store_true", help="run the naive computation in the "
                    "check even where it cannot matter (the naive_err column)")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    if a.input == "torch-cuda":
        import torch
        if not torch.cuda.is_available():
            ap.error("--input torch-cuda: torch sees no CUDA device")
    for family in a.family or ["full", "causal"]:
        print(json.dumps(run(argparse.Namespace(**{**vars(a), "family": family}))), flush=True)


if __name__ == "__main__":
    main()
