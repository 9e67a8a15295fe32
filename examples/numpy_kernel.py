#!/usr/bin/python3
"""examples/numpy_kernel.py — a third-party "kernel" written in NumPy, judged by the oracle.

It is what a kernel author brings: a FlashAttention-2 style forward (key blocks of 16, online
softmax with a running max and rescaled accumulator, float32 arithmetic) and backward (P
recomputed from the saved LSE), with its OWN reading of the FlashMask column bounds, run over
every case of a suite (flashmask gen-suite). Its results go to CANDIDATES/<case>/ and are then
judged case by case with flashmask.check_dirs (the same rule as `flashmask check-suite`).

Planted bugs, one at a time (--bug):
  none          the correct kernel: every case passes
  diagonal      off-by-one in the causal rule: `j >= i + offset` masks the diagonal too
  alignment     the causal offset ignores Sk - Sq (top-left everywhere): wrong for
                bottom-right cases with Sq != Sk only
  no-rescale    the online softmax forgets to rescale the accumulator when the running max
                grows (the classic FlashAttention bug)
  no-max-shift  exp(S) without subtracting the running max: mathematically the same softmax, so
                with these inputs (|S| << 88) float32 does not overflow and the checker rightly
                has nothing to catch (shown to make the point that it judges results, not code)

Usage:
  flashmask gen-suite --out /tmp/suite
  FLASHMASK_LIB=build/libflashmask.so PYTHONPATH=python \\
      /usr/bin/python3 examples/numpy_kernel.py --suite /tmp/suite --out /tmp/cands --bug diagonal
  flashmask check-suite --suite /tmp/suite --candidates /tmp/cands
Exit: 0 every case passed, 1 otherwise.
Layer: examples (over the Python binding).
"""

import argparse
import json
import os
import shutil
import sys

import numpy as np

import flashmask as fm

BLOCK = 16


def allowed_block(bounds_col, causal, sq, sk, rows, cols, bug):
    """The kernel's own element rule over rows x cols (True = attend). bounds_col: [Sk, 4]."""
    i = rows[:, None]
    j = cols[None, :]
    lts, lte, uts, ute = (bounds_col[cols, c][None, :] for c in range(4))
    masked = ((lts <= i) & (i < lte)) | ((uts <= i) & (i < ute))
    if causal != "none":
        offset = sk - sq if causal == "bottom_right" and bug != "alignment" else 0
        masked |= (j >= i + offset) if bug == "diagonal" else (j > i + offset)
    return ~masked


def forward(q, k, v, bounds, causal, scale, bug):
    """out [B,Hq,Sq,D], lse [B,Hq,Sq] in float32, FlashAttention-2 style over key blocks."""
    B, Hq, Sq, D = q.shape
    Hk, Sk, Hm = k.shape[1], k.shape[2], bounds.shape[1]
    out = np.zeros((B, Hq, Sq, D), dtype=np.float32)
    lse = np.full((B, Hq, Sq), -np.inf, dtype=np.float32)
    rows = np.arange(Sq)
    for b in range(B):
        for h in range(Hq):
            qh = q[b, h].astype(np.float32)
            kh = k[b, h // (Hq // Hk)].astype(np.float32)
            vh = v[b, h // (Hq // Hk)].astype(np.float32)
            col = bounds[b, h // (Hq // Hm)]
            m = np.full(Sq, -np.inf, dtype=np.float32)   # running max
            l = np.zeros(Sq, dtype=np.float32)           # running sum
            acc = np.zeros((Sq, D), dtype=np.float32)    # running numerator
            for c0 in range(0, Sk, BLOCK):
                cols = np.arange(c0, min(c0 + BLOCK, Sk))
                ok = allowed_block(col, causal, Sq, Sk, rows, cols, bug)
                s = np.float32(scale) * (qh @ kh[cols].T)
                s = np.where(ok, s, -np.inf).astype(np.float32)
                if bug == "no-max-shift":  # plain exp(S): no running max at all
                    p = np.where(ok, np.exp(s), 0).astype(np.float32)
                    l = l + p.sum(axis=1)
                    acc = acc + p @ vh[cols]
                    continue
                m_new = np.maximum(m, s.max(axis=1))
                shift = np.where(np.isfinite(m_new), m_new, 0).astype(np.float32)
                p = np.where(ok, np.exp(s - shift[:, None]), 0).astype(np.float32)
                # rescale what was accumulated under the old max: exp(m_old - m_new)
                alpha = np.where(np.isfinite(m), np.exp(m - shift), 0).astype(np.float32)
                if bug == "no-rescale":
                    alpha = np.where(np.isfinite(m), np.float32(1), np.float32(0))
                l = alpha * l + p.sum(axis=1)
                acc = alpha[:, None] * acc + p @ vh[cols]
                m = m_new
            live = l > 0
            out[b, h] = np.where(live[:, None], acc / np.where(live, l, 1)[:, None], 0)
            base = np.zeros_like(m) if bug == "no-max-shift" else m
            lse[b, h] = np.where(live, base + np.log(np.where(live, l, 1)), -np.inf)
    return out, lse


def backward(q, k, v, out, lse, dout, bounds, causal, scale, bug):
    """dq, dk, dv in float32 from P = exp(S - lse) recomputed per key block."""
    B, Hq, Sq, D = q.shape
    Hk, Sk, Hm = k.shape[1], k.shape[2], bounds.shape[1]
    dq = np.zeros(q.shape, dtype=np.float32)
    dk = np.zeros(k.shape, dtype=np.float32)
    dv = np.zeros(v.shape, dtype=np.float32)
    rows = np.arange(Sq)
    for b in range(B):
        for h in range(Hq):
            hk = h // (Hq // Hk)
            qh, kh, vh = (x.astype(np.float32) for x in (q[b, h], k[b, hk], v[b, hk]))
            do = dout[b, h].astype(np.float32)
            col = bounds[b, h // (Hq // Hm)]
            live = np.isfinite(lse[b, h])
            lse_h = np.where(live, lse[b, h], 0).astype(np.float32)
            delta = (do * out[b, h]).sum(axis=1).astype(np.float32)
            for c0 in range(0, Sk, BLOCK):
                cols = np.arange(c0, min(c0 + BLOCK, Sk))
                ok = allowed_block(col, causal, Sq, Sk, rows, cols, bug) & live[:, None]
                s = np.float32(scale) * (qh @ kh[cols].T)
                p = np.where(ok, np.exp(s - lse_h[:, None]), 0).astype(np.float32)
                dp = do @ vh[cols].T
                ds = p * (dp - delta[:, None])
                dv[b, hk, cols] += p.T @ do
                dq[b, h] += np.float32(scale) * (ds @ kh[cols])
                dk[b, hk, cols] += np.float32(scale) * (ds.T @ qh)
    return dq, dk, dv


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    ap.add_argument("--suite", required=True)
    ap.add_argument("--out", required=True, help="candidate directory to (re)write")
    ap.add_argument("--bug", default="none",
                    choices=["none", "diagonal", "alignment", "no-rescale", "no-max-shift"])
    args = ap.parse_args()
    with open(os.path.join(args.suite, "manifest.json")) as f:
        manifest = json.load(f)
    if os.path.exists(args.out):
        shutil.rmtree(args.out)
    os.makedirs(args.out)
    passed = failed = 0
    for entry in manifest["cases"]:
        name = entry["name"]
        case = fm.load_case(os.path.join(args.suite, name))
        scale = case.problem["scale"]
        out, lse = forward(case.q, case.k, case.v, case.mask.bounds, case.mask.causal, scale,
                           args.bug)
        dq, dk, dv = backward(case.q, case.k, case.v, out, lse, case.dout, case.mask.bounds,
                              case.mask.causal, scale, args.bug)
        cand_dir = os.path.join(args.out, name)
        fm.save_results(cand_dir, case, out=out, lse=lse, dq=dq, dk=dk, dv=dv)
        rep = fm.check_dirs(os.path.join(args.suite, name), cand_dir)
        bad = [f"{t}: {r['why']}" for t, r in rep.tensors.items() if not r["passed"]]
        print(f"{name:40} {'pass' if rep.passed else 'FAIL'}  {bad[0] if bad else ''}")
        passed += rep.passed
        failed += not rep.passed
    print(f"kernel --bug {args.bug}: {passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
