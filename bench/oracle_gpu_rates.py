#!/usr/bin/env python3
"""bench/oracle_gpu_rates.py — false alarms of the oracle's two rules (derived, fa) on real GPU
kernels, all of them correct: libflashmask's CUDA kernels, FlexAttention (torch.compile), and
SDPA's flash, memory-efficient and cuDNN backends; float16 and bfloat16; random problems from 1
row and 1 key up (mostly small: that is where FlashAttention's rule alarms), every mask family a
backend can express, GQA, both causal alignments. Every candidate is judged in-process by
flashmask.check_arrays (the C rule of `flashmask check`) under both rules against the float64
reference; the first failures of each backend are also written as case + candidate directories
and judged by the `flashmask check` CLI, to show the command agrees. Writes OUT/oracle_gpu_rates.json
(counts per backend, dtype, rule and size class: 1-8 rows, 9-200, 201-512) and prints a table.
Failures whose only reason is a fully masked row's convention (SDPA's finite lse there) are
counted apart as "masked conv.", not as accuracy false alarms.

Backends and what they are given (a backend is used only where it can express the mask):
  ours    fm.forward/fm.backward(impl="cuda"): every family, GQA
  flex    flex_attention compiled (dynamic shapes), dense mask lookup as mask_mod, GQA
  sdpa-flash / sdpa-cudnn   no mask or is_causal (top-left alignment), K/V repeated for GQA
  sdpa-efficient            the mask as an additive -inf bias, K/V repeated for GQA
lse: from the same kernel (flex aux, aten._scaled_dot_product_*_attention with logsumexp);
when a backend gives none, the reference lse rounded to float32 stands in (counted as such).

Usage (GPU host, docs/performance-cuda.md's recipe: `source .gpu/env.sh`, build-gpu carried):
  FLASHMASK_LIB=build-gpu/libflashmask.so PYTHONPATH=python python3 bench/oracle_gpu_rates.py \\
      --out $OUT --cli build-gpu/tools/flashmask [--budget 300] [--seed N]
Layer: bench, over the Python binding and PyTorch.
"""

import argparse
import json
import os
import subprocess
import sys
import time
import traceback

import numpy as np
import torch

import flashmask as fm

TD = {"float16": torch.float16, "bfloat16": torch.bfloat16}


def size_class(sq):
    return "1-8" if sq <= 8 else "9-200" if sq <= 200 else ">200"


def draw_problem(rng):
    r = rng.random()
    big = False
    if r < 0.5:
        sq, sk = int(rng.integers(1, 9)), int(rng.integers(1, 9))
    elif r < 0.94:
        sq, sk = int(rng.integers(9, 201)), int(rng.integers(9, 201))
    else:  # the CPU side (reference, naive, bounds) is O(Sq Sk D) per check: keep these lean
        sq, sk, big = int(rng.integers(201, 513)), int(rng.integers(201, 513)), True
    if rng.random() < 0.5:
        sk = sq
    d = int(rng.choice([64, 128, 256] if not big else [64]))
    hk = 1 if big else int(rng.choice([1, 2]))
    hq = hk * (1 if big else int(rng.choice([1, 2])))
    b = 1 if sq > 200 else int(rng.integers(1, 3))
    family = str(rng.choice(fm.FAMILIES))
    align = str(rng.choice(["bottom_right", "top_left"]))
    dtype = str(rng.choice(["float16", "bfloat16"]))
    return dict(b=b, hq=hq, hk=hk, sq=sq, sk=sk, d=d, family=family, align=align, dtype=dtype)


def make_inputs(pr, rng):
    dt = pr["dtype"]
    shp_q, shp_k = (pr["b"], pr["hq"], pr["sq"], pr["d"]), (pr["b"], pr["hk"], pr["sk"], pr["d"])
    q, dout = (fm.round_to(rng.standard_normal(shp_q), dt) for _ in range(2))
    k, v = (fm.round_to(rng.standard_normal(shp_k), dt) for _ in range(2))
    mask = fm.build(pr["family"], pr["b"], 1, pr["sq"], pr["sk"], pr["align"])
    return q, k, v, dout, mask


def as_np(x):
    return x.detach().float().cpu().numpy().astype(np.float64)


def torch_inputs(q, k, v, dout, dt):
    return [torch.from_numpy(a).to("cuda").to(TD[dt]) for a in (q, k, v, dout)]


def grads(out, tq, tk, tv, tdo):
    out.backward(tdo)
    return as_np(tq.grad), as_np(tk.grad), as_np(tv.grad)


# ------------------------------------------------------------------ backends

def run_ours(pr, q, k, v, dout, mask, scale, ref):
    out, lse = fm.forward(q, k, v, mask, scale, impl="cuda", dtype=pr["dtype"])
    dq, dk, dv = fm.backward(q, k, v, out, lse, dout, mask, scale, impl="cuda", dtype=pr["dtype"])
    return dict(out=out, lse=lse, dq=dq, dk=dk, dv=dv), True


_flex = {}


def run_flex(pr, q, k, v, dout, mask, scale, ref):
    from torch.nn.attention.flex_attention import create_block_mask, flex_attention
    if "fn" not in _flex:
        for knob in ("cache_size_limit", "recompile_limit", "accumulated_cache_size_limit",
                     "accumulated_recompile_limit"):
            if hasattr(torch._dynamo.config, knob):
                setattr(torch._dynamo.config, knob, 4096)
        _flex["fn"] = torch.compile(flex_attention, dynamic=True)
    allowed = torch.from_numpy(mask.to_dense()).to("cuda")  # [B, 1, Sq, Sk]

    def mask_mod(b, h, qi, ki):
        return allowed[b, 0, qi, ki]

    bm = create_block_mask(mask_mod, pr["b"], None, pr["sq"], pr["sk"], device="cuda")
    tq, tk, tv, tdo = torch_inputs(q, k, v, dout, pr["dtype"])
    for t in (tq, tk, tv):
        t.requires_grad_(True)
    try:  # PyTorch >= 2.9 returns auxiliary outputs through AuxRequest
        from torch.nn.attention.flex_attention import AuxRequest
        extra = {"return_aux": AuxRequest(lse=True)}
    except ImportError:
        extra = {"return_lse": True}
    out, aux = _flex["fn"](tq, tk, tv, block_mask=bm, scale=scale, enable_gqa=True, **extra)
    lse = as_np(aux.lse if hasattr(aux, "lse") else aux)
    dq, dk, dv = grads(out, tq, tk, tv, tdo)
    return dict(out=as_np(out), lse=lse, dq=dq, dk=dk, dv=dv), True


def sdpa_common(pr, q, k, v, dout, mask, scale, backend, use_bias):
    from torch.nn.attention import SDPBackend, sdpa_kernel
    tq, k_leaf, v_leaf, tdo = torch_inputs(q, k, v, dout, pr["dtype"])
    g = pr["hq"] // pr["hk"]
    for t in (tq, k_leaf, v_leaf):
        t.requires_grad_(True)
    # GQA as a user of SDPA writes it: K, V repeated; autograd sums their gradients
    tk, tv = k_leaf.repeat_interleave(g, 1), v_leaf.repeat_interleave(g, 1)
    kw, bias = {}, None
    if use_bias:
        allowed = torch.from_numpy(mask.to_dense()).to("cuda")
        pad = (pr["sk"] + 15) // 16 * 16
        full = torch.full((pr["b"], pr["hq"], pr["sq"], pad), float("-inf"), dtype=TD[pr["dtype"]],
                          device="cuda")
        bias = full[..., :pr["sk"]]
        bias.masked_fill_(allowed.expand(-1, pr["hq"], -1, -1), 0.0)
        kw["attn_mask"] = bias
    elif pr["family"] == "causal":
        kw["is_causal"] = True
    bk = {"flash": SDPBackend.FLASH_ATTENTION, "efficient": SDPBackend.EFFICIENT_ATTENTION,
          "cudnn": SDPBackend.CUDNN_ATTENTION}[backend]
    with sdpa_kernel([bk]):
        out = torch.nn.functional.scaled_dot_product_attention(tq, tk, tv, scale=scale, **kw)
    dq, dk, dv = grads(out, tq, k_leaf, v_leaf, tdo)
    lse, own = None, True
    try:
        with torch.no_grad():
            a = (tq.detach(), tk.detach(), tv.detach())
            causal = bool(kw.get("is_causal", False))
            if backend == "flash":
                lse = torch.ops.aten._scaled_dot_product_flash_attention(
                    *a, 0.0, causal, False, scale=scale)[1]
            elif backend == "efficient":
                lse = torch.ops.aten._scaled_dot_product_efficient_attention(
                    *a, bias, True, 0.0, causal, scale=scale)[1]
            else:
                lse = torch.ops.aten._scaled_dot_product_cudnn_attention(
                    *a, bias, True, 0.0, causal, False, scale=scale)[1]
        lse = as_np(lse)[..., :pr["sq"]].reshape(pr["b"], pr["hq"], pr["sq"])
    except Exception:
        lse, own = None, False
    return dict(out=as_np(out), lse=lse, dq=dq, dk=dk, dv=dv), own


def sdpa_runner(backend):
    def run(pr, q, k, v, dout, mask, scale, ref):
        use_bias = backend == "efficient"
        if not use_bias and pr["family"] not in ("full", "causal"):
            return None, False
        if not use_bias and pr["family"] == "causal" and pr["sq"] != pr["sk"] and \
                pr["align"] != "top_left":
            return None, False  # is_causal is top-left
        return sdpa_common(pr, q, k, v, dout, mask, scale, backend, use_bias)
    return run


def run_cpu(pr, q, k, v, dout, mask, scale, ref):
    """libflashmask's float32 cpu layer judged as X: a dry run of this script without a GPU
    (--backends cpu)."""
    out, lse = fm.forward(q, k, v, mask, scale, impl="cpu", dtype="float32")
    dq, dk, dv = fm.backward(q, k, v, out, lse, dout, mask, scale, impl="cpu", dtype="float32")
    cand = {"out": out, "lse": lse, "dq": dq, "dk": dk, "dv": dv}
    for t in ("out", "dq", "dk", "dv"):
        cand[t] = fm.round_to(cand[t], pr["dtype"])
    return cand, True


BACKENDS = {"cpu": run_cpu, "ours": run_ours, "flex": run_flex, "sdpa-flash": sdpa_runner("flash"),
            "sdpa-efficient": sdpa_runner("efficient"), "sdpa-cudnn": sdpa_runner("cudnn")}


# ------------------------------------------------------------------ main

def cli_check(cli, tmp, tag, q, k, v, dout, mask, pr, scale, ref, cand):
    """The same judgement through `flashmask check` (files), both rules: exit codes."""
    cdir, rdir = os.path.join(tmp, tag, "case"), os.path.join(tmp, tag, "cand")
    os.makedirs(os.path.join(tmp, tag), exist_ok=True)
    fm.save_case(cdir, q, k, v, dout, mask, pr["dtype"], scale, expected=ref)
    fm.save_results(rdir, fm.load_case(cdir), **cand)
    return {rule: subprocess.run([cli, "check", "--case", cdir, "--candidate", rdir, "--rule", rule],
                                 capture_output=True, text=True).returncode
            for rule in ("derived", "fa")}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.environ.get("OUT", "."))
    ap.add_argument("--cli", default=None, help="flashmask CLI, to judge a few cases as files")
    ap.add_argument("--budget", type=float, default=300.0, help="seconds of drawing problems")
    ap.add_argument("--seed", type=int, default=int(time.time()))
    ap.add_argument("--backends", default="ours,flex,sdpa-flash,sdpa-efficient,sdpa-cudnn")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    rng = np.random.default_rng(args.seed)
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    print(f"seed {args.seed}; torch {torch.__version__}, {device}", flush=True)
    counts, errors, examples, cli_runs = {}, {}, [], []
    disabled = set()
    t0, problems = time.time(), 0
    while time.time() - t0 < args.budget:
        pr = draw_problem(rng)
        try:  # a family's default parameters may not fit a tiny Sk: draw again
            q, k, v, dout, mask = make_inputs(pr, rng)
        except fm.FlashMaskError:
            continue
        scale = 1.0 / np.sqrt(pr["d"])
        ref = fm.reference(q, k, v, dout, mask, scale)
        problems += 1
        for name in args.backends.split(","):
            if name in disabled:
                continue
            try:
                cand, own_lse = BACKENDS[name](pr, q, k, v, dout, mask, scale, ref)
                if torch.cuda.is_available():
                    torch.cuda.synchronize()
            except Exception as e:
                n = errors.setdefault(name, {"count": 0, "first": None})
                n["count"] += 1
                if n["first"] is None:
                    n["first"] = traceback.format_exc()[-2000:]
                if n["count"] >= 20 and name != "ours":
                    disabled.add(name)  # a backend that cannot run here: stop paying for it
                continue
            if cand is None:
                continue
            if cand["lse"] is None:
                cand["lse"] = ref["lse"].astype(np.float32).astype(np.float64)
            key = (name, pr["dtype"], size_class(pr["sq"]))
            c = counts.setdefault(key, {"judged": 0, "derived": 0, "fa": 0, "own_lse": 0,
                                        "masked_rows_convention": 0, "worst_derived": 0.0})
            c["judged"] += 1
            c["own_lse"] += int(own_lse)
            verdict = {}
            for rule in ("derived", "fa"):
                rep = fm.check_arrays(q, k, v, dout, mask, cand, pr["dtype"], scale, ref,
                                      rule=rule)
                verdict[rule] = rep.passed
                whys = [t["why"] for t in rep.tensors.values() if not t["passed"]]
                if whys and all("fully masked rows" in w for w in whys):
                    # a convention (finite lse or nonzero out on empty rows), not accuracy:
                    # counted apart (docs/oracle.md section 5 discusses SDPA's finite lse)
                    if rule == "derived":
                        c["masked_rows_convention"] += 1
                    verdict[rule] = True
                    continue
                c[rule] += int(not rep.passed)
                if rule == "derived":
                    c["worst_derived"] = max(c["worst_derived"],
                                             max(t["ratio"] for t in rep.tensors.values()))
                if not rep.passed and len(examples) < 200:
                    bad = [f"{n}: {t['why']}" for n, t in rep.tensors.items() if not t["passed"]]
                    examples.append({"backend": name, "rule": rule, "problem": pr, "why": bad})
            if args.cli and not verdict["fa"] and \
                    sum(1 for r in cli_runs if r["backend"] == name) < 3:
                try:
                    rc = cli_check(args.cli, os.path.join(args.out, "cli_cases"),
                                   f"{name}-{problems}", q, k, v, dout, mask, pr, scale, ref,
                                   cand)
                except Exception as e:  # the measurement goes on; the reason is kept
                    rc = f"error: {e}"
                cli_runs.append({"backend": name, "problem": pr, "exit": rc,
                                 "in_process": verdict})
    table = [{"backend": b, "dtype": d, "rows": s, **c} for (b, d, s), c in sorted(counts.items())]
    total = sum(c["judged"] for c in counts.values())
    res = {"seed": args.seed, "problems": problems, "candidates": total,
           "seconds": time.time() - t0, "torch": torch.__version__,
           "device": device, "table": table, "errors": errors,
           "disabled": sorted(disabled), "failures": examples, "cli": cli_runs}
    with open(os.path.join(args.out, "oracle_gpu_rates.json"), "w") as f:
        json.dump(res, f, indent=1, default=str)
    print(f"{problems} problems, {total} candidates, {res['seconds']:.0f} s")
    print(f"{'backend':15} {'dtype':9} {'rows':6} {'judged':>7} {'derived':>8} {'fa':>6} "
          f"{'own lse':>8} {'masked conv.':>12} {'worst err/bound (derived)':>26}")
    for r in table:
        print(f"{r['backend']:15} {r['dtype']:9} {r['rows']:6} {r['judged']:7d} {r['derived']:8d} "
              f"{r['fa']:6d} {r['own_lse']:8d} {r['masked_rows_convention']:12d} "
              f"{r['worst_derived']:26.3g}")
    for name, e in errors.items():
        print(f"{name}: {e['count']} raised; first:\n{e['first']}")
    for r in cli_runs:
        print(f"cli check {r['backend']}: exit {r['exit']} (in-process {r['in_process']})")
    return 1 if any(c["derived"] for c in counts.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
