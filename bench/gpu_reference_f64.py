#!/usr/bin/env python3
"""bench/gpu_reference_f64.py — the GPU float64 oracle (fm_cuda_reference_*, flashmask/cuda.h)
at long contexts, on a GPU host with PyTorch. Two subcommands:

  time   forward and backward on device pointers (torch float64 tensors), one head, D = 128,
         for each S and family: seconds (CUDA events), TFLOP/s over allowed pairs
         (fm_problem_flops: 4 D per pair forward, 2.5 x that backward), and a spot check of
         every output tensor at that length: a few rows of out, lse, dq and a few columns of
         dk, dv recomputed densely in float64 with torch (relative error per tensor,
         max|gpu - torch| / max|torch|).
  flex   FlexAttention (torch.compile'd flex_attention, a document-id mask_mod for
         causal_document) on a case directory written by `flashmask gen`, its out, lse, dq,
         dk, dv written as a candidate directory for `flashmask check`.

Usage (bench/gpu_reference_f64.sh runs both):
  FLASHMASK_LIB=build-gpu/libflashmask.so python3 bench/gpu_reference_f64.py time --json t.json
  python3 bench/gpu_reference_f64.py flex --case /tmp/case --candidate /tmp/cand --json f.json
Layer: tools (benchmark), over the python binding and the cuda layer.
"""

import argparse
import ctypes as C
import json
import os
import sys
import time

import numpy as np
import torch


# ------------------------------------------------------------------ time


def _lib():
    import flashmask
    from flashmask import _lib as L

    class CudaMask(C.Structure):  # fm_cuda_mask (flashmask/cuda.h)
        _fields_ = [("batch", C.c_int64), ("heads", C.c_int64), ("seqlen_q", C.c_int64),
                    ("seqlen_k", C.c_int64), ("causal", C.c_int), ("block_k", C.c_int64),
                    ("n_blocks", C.c_int64), ("bounds", C.c_void_p), ("summary", C.c_void_p),
                    ("live_per_kblock", C.c_double)]

    lib = L.lib
    lib.fm_problem_flops.restype = C.c_double
    lib.fm_cuda_reference_forward.argtypes = [C.c_void_p, C.c_void_p] + [C.c_void_p] * 6
    lib.fm_cuda_reference_backward.argtypes = [C.c_void_p, C.c_void_p] + [C.c_void_p] * 10
    return flashmask, L, lib, CudaMask


def build_mask(fm, family, seqlen, docs):
    if family == "causal_document":
        lens = [seqlen // docs] * docs
        lens[-1] += seqlen - sum(lens)
        return fm.build(family, seqlen_q=seqlen, doc_lens=lens)
    return fm.build(family, seqlen_q=seqlen)


def allowed(bounds, causal_off, rows, cols):
    """Dense allowed [len(rows), len(cols)] (docs/spec.md §2), on the GPU; bounds [Sk, 4]."""
    b = torch.from_numpy(np.ascontiguousarray(bounds[0, 0, cols])).cuda().long()  # [c, 4]
    i = torch.tensor(rows, device="cuda").view(-1, 1)
    j = torch.tensor(cols, device="cuda").view(1, -1)
    masked = ((b[:, 0] <= i) & (i < b[:, 1])) | ((b[:, 2] <= i) & (i < b[:, 3]))
    if causal_off is not None:
        masked |= j > i + causal_off
    return ~masked


def allowed_rows(bounds, causal_off, rows, seqlen):
    """Dense allowed [len(rows), Sk] for a few query rows."""
    return allowed(bounds, causal_off, rows, list(range(seqlen)))


def allowed_cols(bounds, causal_off, cols, seqlen):
    """Dense allowed [Sq, len(cols)] for a few key columns."""
    return allowed(bounds, causal_off, list(range(seqlen)), cols)


def rel(a, b):
    den = b.abs().max().item()
    return (a - b).abs().max().item() / (den if den > 0 else 1e-300)


def spot_check(bounds, causal, scale, q, k, v, do, out, lse, dq, dk, dv, seqlen):
    """Relative error of a few rows (out, lse, dq) and columns (dk, dv) against torch float64."""
    off = None if causal == 0 else 0  # Sq = Sk: both alignments give offset 0
    q0, k0, v0, do0 = q[0, 0], k[0, 0], v[0, 0], do[0, 0]
    rows = sorted({0, 1, seqlen // 8 - 1, seqlen // 8, seqlen // 2 + 3, seqlen - 2, seqlen - 1})
    al = allowed_rows(bounds, off, rows, seqlen)
    s = scale * (q0[rows] @ k0.T)
    s = s.masked_fill(~al, float("-inf"))
    lse_r = torch.logsumexp(s, dim=1)
    p = torch.exp(s - lse_r[:, None])
    out_r = p @ v0
    delta = (do0[rows] * out_r).sum(1)
    dp = do0[rows] @ v0.T
    dq_r = scale * ((p * (dp - delta[:, None])) @ k0)
    cols = rows
    alc = allowed_cols(bounds, off, cols, seqlen)
    lse_all = lse[0, 0]
    sc = scale * (q0 @ k0[cols].T)  # [Sq, c]
    pc = torch.where(alc, torch.exp(sc - lse_all[:, None]), torch.zeros_like(sc))
    dv_c = pc.T @ do0
    delta_all = (do0 * out[0, 0]).sum(1)
    dpc = do0 @ v0[cols].T
    dk_c = scale * ((pc * (dpc - delta_all[:, None])).T @ q0)
    return {"out": rel(out[0, 0, rows], out_r), "lse": rel(lse[0, 0, rows], lse_r),
            "dq": rel(dq[0, 0, rows], dq_r), "dk": rel(dk[0, 0, cols], dk_c),
            "dv": rel(dv[0, 0, cols], dv_c), "rows_and_cols": rows}


def cmd_time(args):
    fm, L, lib, CudaMask = _lib()
    D = args.head_dim
    results = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__,
               "lib": L.LIB_PATH, "head_dim": D, "heads": 1, "rows": []}
    for S in [int(x) for x in args.seqlens.split(",")]:
        torch.manual_seed(S)
        q, k, v, do = (torch.randn(1, 1, S, D, device="cuda", dtype=torch.float64)
                       for _ in range(4))
        out, dq, dk, dv = (torch.empty_like(q) for _ in range(4))
        lse = torch.empty(1, 1, S, device="cuda", dtype=torch.float64)
        p = L.Problem()
        lib.fm_problem_init(C.byref(p), 1, 1, 1, S, S, D)
        for fam in args.families.split(","):
            m = build_mask(fm, fam, S, args.docs)
            cm = m.c()
            dm = CudaMask()
            L.check(lib.fm_cuda_mask_upload(C.byref(cm), C.byref(dm)), "upload")
            ptr = lambda t: C.c_void_p(t.data_ptr())
            st = C.c_void_p(torch.cuda.current_stream().cuda_stream)

            def fwd():
                L.check(lib.fm_cuda_reference_forward(C.byref(p), C.byref(dm), ptr(q), ptr(k),
                                                      ptr(v), ptr(out), ptr(lse), st), "fwd")

            def bwd():
                L.check(lib.fm_cuda_reference_backward(C.byref(p), C.byref(dm), ptr(q), ptr(k),
                                                       ptr(v), ptr(out), ptr(lse), ptr(do),
                                                       ptr(dq), ptr(dk), ptr(dv), st), "bwd")

            def timed(fn, reps):
                ts = []
                for _ in range(reps):
                    a = torch.cuda.Event(enable_timing=True)
                    b = torch.cuda.Event(enable_timing=True)
                    a.record()
                    fn()
                    b.record()
                    torch.cuda.synchronize()
                    ts.append(a.elapsed_time(b) / 1e3)
                return sorted(ts)[len(ts) // 2]

            reps = 3 if S <= 32768 else 1
            fwd(), bwd()  # warm: kernel attributes, the stream-ordered allocator
            torch.cuda.synchronize()
            t_f, t_b = timed(fwd, reps), timed(bwd, reps)
            ff = lib.fm_problem_flops(C.byref(p), C.byref(cm), 0)
            fb = lib.fm_problem_flops(C.byref(p), C.byref(cm), 1)
            row = {"family": fam, "seqlen": S, "fwd_s": t_f, "bwd_s": t_b, "total_s": t_f + t_b,
                   "fwd_tflops": ff / t_f / 1e12, "bwd_tflops": fb / t_b / 1e12,
                   "allowed_pairs": ff / (4 * D),
                   "docs": args.docs if fam == "causal_document" else None,
                   "peak_mem_gib": torch.cuda.max_memory_allocated() / 2**30}
            if not args.no_spot:
                row["spot_rel_err"] = spot_check(m.bounds, cm.causal, p.scale, q, k, v, do, out,
                                                 lse, dq, dk, dv, S)
            lib.fm_cuda_mask_free(C.byref(dm))
            results["rows"].append(row)
            print(json.dumps(row), flush=True)
        torch.cuda.empty_cache()
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    return 0


# ------------------------------------------------------------------ flex


def cmd_flex(args):
    from torch.nn.attention.flex_attention import create_block_mask, flex_attention
    with open(os.path.join(args.case, "case.json")) as f:
        meta = json.load(f)
    if meta.get("mask_kind") not in (None, "causal_document"):
        print(f"flex: this script expresses causal_document only, not {meta['mask_kind']}")
        return 2
    dt = {"bfloat16": torch.bfloat16, "float16": torch.float16}[meta["dtype"]]
    t = {n: torch.from_numpy(np.load(os.path.join(args.case, n + ".npy"))).cuda().to(dt)
         for n in ("q", "k", "v", "do")}  # exact: the values are rounded to dtype already
    bounds = np.load(os.path.join(args.case, "mask.npy"))
    S = meta["seqlen_q"]
    assert meta["seqlen_k"] == S and meta["mask_heads"] == 1
    # document ids from the mask itself: in causal_document, key j's LT interval starts where
    # its document ends (rows past its document are masked), so documents are the runs of
    # equal LTS; the causal part is the alignment's.
    lts = torch.from_numpy(np.ascontiguousarray(bounds[0, 0, :, 0])).cuda()
    doc = torch.cumsum(torch.cat([torch.ones(1, device="cuda", dtype=torch.int64),
                                  (lts[1:] != lts[:-1]).long()]), 0) - 1

    def mask_mod(b, h, q_idx, kv_idx):
        return (doc[q_idx] == doc[kv_idx]) & (q_idx >= kv_idx)

    t0 = time.time()
    block_mask = create_block_mask(mask_mod, 1, 1, S, S, device="cuda", BLOCK_SIZE=128,
                                   _compile=True)
    flex = torch.compile(flex_attention)
    q, k, v = (t[n].clone().requires_grad_(True) for n in ("q", "k", "v"))
    try:  # PyTorch >= 2.9 returns auxiliary outputs through AuxRequest
        from torch.nn.attention.flex_attention import AuxRequest
        extra = {"return_aux": AuxRequest(lse=True)}
    except ImportError:
        extra = {"return_lse": True}
    out, aux = flex(q, k, v, block_mask=block_mask, scale=meta["scale"],
                    enable_gqa=meta["q_heads"] != meta["kv_heads"], **extra)
    lse = aux.lse if hasattr(aux, "lse") else aux  # natural-log logsumexp
    out.backward(t["do"])
    torch.cuda.synchronize()
    t1 = time.time()
    os.makedirs(args.candidate, exist_ok=True)
    for name, x in (("out", out), ("lse", lse), ("dq", q.grad), ("dk", k.grad), ("dv", v.grad)):
        np.save(os.path.join(args.candidate, name + ".npy"),
                x.detach().float().cpu().numpy().astype(np.float32))
    rep = {"torch": torch.__version__, "device": torch.cuda.get_device_name(0),
           "seqlen": S, "documents": int(doc[-1].item()) + 1, "dtype": meta["dtype"],
           "first_call_s_incl_compile": t1 - t0}
    print(json.dumps(rep))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rep, f, indent=1)
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("time")
    a.add_argument("--seqlens", default="32768,65536,131072")
    a.add_argument("--families", default="full,causal,causal_document")
    a.add_argument("--docs", type=int, default=8)
    a.add_argument("--head-dim", type=int, default=128)
    a.add_argument("--no-spot", action="store_true")
    a.add_argument("--json")
    b = sub.add_parser("flex")
    b.add_argument("--case", required=True)
    b.add_argument("--candidate", required=True)
    b.add_argument("--json")
    args = ap.parse_args()
    return cmd_time(args) if args.cmd == "time" else cmd_flex(args)


if __name__ == "__main__":
    sys.exit(main())
