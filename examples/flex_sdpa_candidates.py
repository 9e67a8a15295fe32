#!/usr/bin/env python3
"""examples/flex_sdpa_candidates.py — real third-party kernels on the oracle's suite: PyTorch
FlexAttention (Triton, torch.compile) and SDPA (memory-efficient backend with a dense mask) run
on every case of a suite made by `flashmask gen-suite`, their results written as candidate
directories, to be judged by `flashmask check-suite`.

Only NumPy and PyTorch are needed here (no libflashmask in this process): the case format of
docs/spec.md §6 is plain .npy + JSON, which is the point. Per case:
  - inputs q, k, v, do are read and cast to the case's dtype on the GPU (they hold values
    already rounded to it, so the cast is exact);
  - the mask is turned into a dense boolean [B, Hq, Sq, Sk] from mask.npy with the element rule
    of docs/spec.md §2 (a third party's own reading of it: this is what is being validated);
  - FlexAttention: create_block_mask(mask_mod looking the dense mask up), flex_attention with
    enable_gqa, its logsumexp, and out.backward(do) for dq, dk, dv;
  - SDPA: the memory-efficient kernel with the mask as an additive -inf bias (what
    scaled_dot_product_attention dispatches to with a mask), its logsumexp from the same kernel
    (torch.ops.aten._scaled_dot_product_efficient_attention), autograd for the gradients; K and
    V are repeated over the query heads of their group (GQA).
Results are written as float32 .npy to OUT/flex/<case>/ and OUT/sdpa/<case>/; a case whose
kernel raised is left out (check-suite then reports it as missing) and the error is printed.

Usage (GPU host; flashmask built there or carried):
  flashmask gen-suite --out /tmp/suite
  python3 examples/flex_sdpa_candidates.py --suite /tmp/suite --out /tmp/cands [--budget 150]
  flashmask check-suite --suite /tmp/suite --candidates /tmp/cands/flex
  flashmask check-suite --suite /tmp/suite --candidates /tmp/cands/sdpa
Layer: examples.
"""

import argparse
import json
import os
import sys
import time
import traceback

import numpy as np
import torch

TORCH_DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}


def load_case(path, device):
    with open(os.path.join(path, "case.json")) as f:
        meta = json.load(f)
    dt = TORCH_DTYPES[meta["dtype"]]
    t = {n: torch.from_numpy(np.load(os.path.join(path, f + ".npy"))).to(device)
         for n, f in (("q", "q"), ("k", "k"), ("v", "v"), ("dout", "do"))}
    for n in t:
        t[n] = t[n].to(dt)  # exact: the values are already rounded to the case's dtype
    bounds = np.load(os.path.join(path, "mask.npy"))
    return meta, t, bounds


def dense_allowed(bounds, meta, device):
    """Allowed [B, Hq, Sq, Sk] from the [B, Hm, Sk, 4] column bounds (docs/spec.md §2)."""
    sq, sk = meta["seqlen_q"], meta["seqlen_k"]
    b = torch.from_numpy(bounds).to(device).long()             # [B, Hm, Sk, 4]
    i = torch.arange(sq, device=device).view(1, 1, sq, 1)
    j = torch.arange(sk, device=device).view(1, 1, 1, sk)
    lts, lte, uts, ute = (b[..., c].unsqueeze(2) for c in range(4))  # [B, Hm, 1, Sk]
    masked = ((lts <= i) & (i < lte)) | ((uts <= i) & (i < ute))
    if meta["causal"] != "none":
        off = sk - sq if meta["causal"] == "bottom_right" else 0
        masked = masked | (j > i + off)
    allowed = ~masked
    return allowed.repeat_interleave(meta["q_heads"] // meta["mask_heads"], dim=1).contiguous()


def save(out_dir, out, lse, dq, dk, dv):
    os.makedirs(out_dir, exist_ok=True)
    for name, x in (("out", out), ("lse", lse), ("dq", dq), ("dk", dk), ("dv", dv)):
        np.save(os.path.join(out_dir, name + ".npy"),
                x.detach().float().cpu().numpy().astype(np.float32))


# ------------------------------------------------------------------ FlexAttention

_flex_compiled = {}


def flex_attention_fn():
    from torch.nn.attention.flex_attention import flex_attention
    if "fn" not in _flex_compiled:
        # every (dtype, head_dim, shape) is a new graph: allow many before dynamo would fall
        # back to the unfused eager path (which would not be the Triton kernel under test)
        for knob in ("cache_size_limit", "recompile_limit", "accumulated_cache_size_limit",
                     "accumulated_recompile_limit"):
            if hasattr(torch._dynamo.config, knob):
                setattr(torch._dynamo.config, knob, 1024)
        _flex_compiled["fn"] = torch.compile(flex_attention)
    return _flex_compiled["fn"]


def run_flex(meta, t, allowed):
    from torch.nn.attention.flex_attention import create_block_mask
    B, Hq, Sq, Sk = allowed.shape

    def mask_mod(b, h, q_idx, kv_idx):
        return allowed[b, h, q_idx, kv_idx]

    block_mask = create_block_mask(mask_mod, B, Hq, Sq, Sk, device=allowed.device)
    q, k, v = (t[n].clone().requires_grad_(True) for n in ("q", "k", "v"))
    flex = flex_attention_fn()
    try:  # PyTorch >= 2.9 returns auxiliary outputs through AuxRequest
        from torch.nn.attention.flex_attention import AuxRequest
        extra = {"return_aux": AuxRequest(lse=True)}
    except ImportError:
        extra = {"return_lse": True}
    out, aux = flex(q, k, v, block_mask=block_mask, scale=meta["scale"], enable_gqa=True,
                    **extra)
    lse = aux.lse if hasattr(aux, "lse") else aux  # natural-log logsumexp either way
    out.backward(t["dout"])
    return out, lse, q.grad, k.grad, v.grad


# ------------------------------------------------------------------ SDPA (memory-efficient)

def run_sdpa(meta, t, allowed):
    from torch.nn.attention import SDPBackend, sdpa_kernel
    group = meta["q_heads"] // meta["kv_heads"]
    dt = t["q"].dtype
    sq, sk = allowed.shape[2], allowed.shape[3]
    # additive bias: 0 allowed, -inf masked; last dim padded to a multiple of 16 as the kernel
    # wants its bias rows aligned, then viewed back to Sk
    pad = (sk + 15) // 16 * 16
    bias_full = torch.full(allowed.shape[:3] + (pad,), float("-inf"), dtype=dt,
                           device=allowed.device)
    bias = bias_full[..., :sk]
    bias.masked_fill_(allowed, 0.0)
    q = t["q"].clone().requires_grad_(True)
    k = t["k"].clone().requires_grad_(True)
    v = t["v"].clone().requires_grad_(True)
    kr, vr = k.repeat_interleave(group, dim=1), v.repeat_interleave(group, dim=1)
    with sdpa_kernel([SDPBackend.EFFICIENT_ATTENTION]):
        out = torch.nn.functional.scaled_dot_product_attention(q, kr, vr, attn_mask=bias,
                                                               scale=meta["scale"])
    out.backward(t["dout"])
    with torch.no_grad():
        _, lse, *_ = torch.ops.aten._scaled_dot_product_efficient_attention(
            t["q"], kr.detach(), vr.detach(), bias, True, 0.0, False, scale=meta["scale"])
    return out, lse[..., :sq], q.grad, k.grad, v.grad


def main():
    ap = argparse.ArgumentParser(description="FlexAttention and SDPA candidates for a suite")
    ap.add_argument("--suite", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--budget", type=float, default=150.0,
                    help="seconds after which remaining cases are skipped")
    ap.add_argument("--kernels", default="sdpa,flex")
    ap.add_argument("--verbose", action="store_true", help="time of every case")
    args = ap.parse_args()
    device = "cuda"
    print(f"torch {torch.__version__}, {torch.cuda.get_device_name(0)}")
    with open(os.path.join(args.suite, "manifest.json")) as f:
        cases = json.load(f)["cases"]
    start = time.time()
    runners = {"flex": run_flex, "sdpa": run_sdpa}
    for kernel in args.kernels.split(","):
        done = failed = skipped = 0
        t0 = time.time()
        for entry in cases:
            name = entry["name"]
            if time.time() - start > args.budget:
                skipped += 1
                continue
            meta, t, bounds = load_case(os.path.join(args.suite, name), device)
            allowed = dense_allowed(bounds, meta, device)
            try:
                t1 = time.time()
                res = runners[kernel](meta, t, allowed)
                torch.cuda.synchronize()
                save(os.path.join(args.out, kernel, name), *res)
                done += 1
                if args.verbose:
                    print(f"{kernel} {name}: {time.time() - t1:.2f} s")
            except Exception as e:  # reported, and the case is left out
                failed += 1
                if failed == 1:  # the whole traceback once per kernel, for whoever fixes it
                    traceback.print_exc(file=sys.stdout)
                msg = traceback.format_exception_only(type(e), e)[-1].strip()
                print(f"{kernel} {name}: raised {msg[:300]}")
        print(f"{kernel}: {done} cases written, {failed} raised, {skipped} skipped "
              f"(budget), {time.time() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
