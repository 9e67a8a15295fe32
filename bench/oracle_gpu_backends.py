"""bench/oracle_gpu_backends.py — the GPU kernels bench/oracle_gpu_rates.py judges, each run on
one problem's inputs (float64 arrays holding float16 / bfloat16 values) and returning its
outputs as float64 arrays plus whether the lse is the kernel's own:

  ours            fm.forward / fm.backward(impl="cuda"): every family, GQA
  flex            FlexAttention: torch.compile(flex_attention, dynamic=False), the mask as a
                  dense lookup in a mask_mod (create_block_mask), enable_gqa. One compiled graph
                  per (shape, dtype): the driver gives Flex problems from a fixed menu of shapes
                  (oracle_gpu_rates.FLEX_MENU, --shapes menu) so that each compiled kernel
                  is reused with other masks and inputs; the mask tensor is a module-level
                  global, which dynamo guards by shape and dtype, not by value. Every
                  candidate is Flex's own output for that problem.
  sdpa-flash, sdpa-cudnn   no mask or is_causal (top-left), K/V repeated for GQA
  sdpa-efficient  the mask as an additive -inf bias, K/V repeated for GQA (autograd then sums
                  the per-head dK, dV partials in the 16-bit dtype: term B7 of docs/oracle.md 2.2)
A backend returns (None, False) where it cannot express the problem, and raises where it fails.
Layer: bench, over the Python binding and PyTorch.
"""

import time

import numpy as np
import torch

import flashmask as fm

TD = {"float16": torch.float16, "bfloat16": torch.bfloat16}


def as_np(x):
    return x.detach().float().cpu().numpy().astype(np.float64)


def torch_inputs(q, k, v, dout, dt):
    return [torch.from_numpy(a).to("cuda").to(TD[dt]) for a in (q, k, v, dout)]


def grads(out, tq, tk, tv, tdo):
    out.backward(tdo)
    return as_np(tq.grad), as_np(tk.grad), as_np(tv.grad)


def dense_allowed(mask, sq, hq):
    """[B, Hq, Sq, Sk] bool on the GPU: True where row i may see key j."""
    a = torch.from_numpy(np.ascontiguousarray(mask.to_dense())).to("cuda").bool()
    return a.expand(-1, hq, -1, -1) if a.shape[1] == 1 else a.repeat_interleave(hq // a.shape[1], 1)


# ------------------------------------------------------------------ ours

def run_ours(pr, q, k, v, dout, mask, scale):
    out, lse = fm.forward(q, k, v, mask, scale, impl="cuda", dtype=pr["dtype"])
    dq, dk, dv = fm.backward(q, k, v, out, lse, dout, mask, scale, impl="cuda", dtype=pr["dtype"])
    return dict(out=out, lse=lse, dq=dq, dk=dk, dv=dv), True


# ------------------------------------------------------------------ FlexAttention

FLEX = {"fn": None, "compile_s": {}, "extra": None}
FLEX_MODS = {}  # shape -> (its mask tensor, refilled per problem; the mask_mod reading it)


def flex_mask_mod_for(shape, like):
    """One mask_mod per shape, closing over one tensor that every problem of the shape refills:
    the compiled graph of the shape is reused (a mask_mod reading a module global instead made
    inductor fail with 'FakeTensorMode should not be set when dispatching flex_attention' on
    PyTorch 2.11)."""
    if shape not in FLEX_MODS:
        allowed = torch.empty_like(like)

        def mask_mod(b, h, q_idx, kv_idx):
            return allowed[b, q_idx, kv_idx]

        FLEX_MODS[shape] = (allowed, mask_mod)
    return FLEX_MODS[shape]


def _flex_fn():
    from torch.nn.attention.flex_attention import flex_attention
    if FLEX["fn"] is None:
        # one graph per menu shape and dtype: allow them all before dynamo would fall back to
        # the unfused eager path (which is not the kernel under test)
        for knob in ("cache_size_limit", "recompile_limit", "accumulated_cache_size_limit",
                     "accumulated_recompile_limit"):
            if hasattr(torch._dynamo.config, knob):
                setattr(torch._dynamo.config, knob, 1024)
        FLEX["fn"] = torch.compile(flex_attention, dynamic=False)
        try:  # PyTorch >= 2.9 returns auxiliary outputs through AuxRequest
            from torch.nn.attention.flex_attention import AuxRequest
            FLEX["extra"] = {"return_aux": AuxRequest(lse=True)}
        except ImportError:
            FLEX["extra"] = {"return_lse": True}
    return FLEX["fn"]


def run_flex(pr, q, k, v, dout, mask, scale):
    from torch.nn.attention.flex_attention import create_block_mask
    shape = (pr["b"], pr["hq"], pr["hk"], pr["sq"], pr["sk"], pr["d"], pr["dtype"])
    fn = _flex_fn()
    allowed = torch.from_numpy(np.ascontiguousarray(mask.to_dense()[:, 0])).to("cuda").bool()
    held, mask_mod = flex_mask_mod_for(shape, allowed)
    held.copy_(allowed)
    bm = create_block_mask(mask_mod, pr["b"], None, pr["sq"], pr["sk"], device="cuda")
    tq, tk, tv, tdo = torch_inputs(q, k, v, dout, pr["dtype"])
    for t in (tq, tk, tv):
        t.requires_grad_(True)
    t0 = time.time()
    # scale as a Python float: a NumPy scalar would reach the compiled graph as a tensor input
    out, aux = fn(tq, tk, tv, block_mask=bm, scale=float(scale), enable_gqa=pr["hq"] > pr["hk"],
                  **FLEX["extra"])
    lse = as_np(aux.lse if hasattr(aux, "lse") else aux)  # natural-log logsumexp either way
    dq, dk, dv = grads(out, tq, tk, tv, tdo)
    key = "x".join(map(str, shape))
    if key not in FLEX["compile_s"]:  # the first call of a shape compiles it
        FLEX["compile_s"][key] = round(time.time() - t0, 2)
    return dict(out=as_np(out), lse=lse, dq=dq, dk=dk, dv=dv), True


# ------------------------------------------------------------------ SDPA

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
        allowed = dense_allowed(mask, pr["sq"], pr["hq"])
        pad = (pr["sk"] + 15) // 16 * 16  # bias rows aligned as the kernel wants them
        full = torch.full((pr["b"], pr["hq"], pr["sq"], pad), float("-inf"), dtype=TD[pr["dtype"]],
                          device="cuda")
        bias = full[..., :pr["sk"]]
        bias.masked_fill_(allowed, 0.0)
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
    def run(pr, q, k, v, dout, mask, scale):
        use_bias = backend == "efficient"
        if not use_bias and pr["family"] not in ("full", "causal"):
            return None, False
        if not use_bias and pr["family"] == "causal" and pr["sq"] != pr["sk"] and \
                pr["align"] != "top_left":
            return None, False  # is_causal is top-left
        return sdpa_common(pr, q, k, v, dout, mask, scale, backend, use_bias)
    return run


BACKENDS = {"ours": run_ours, "flex": run_flex, "sdpa-flash": sdpa_runner("flash"),
            "sdpa-efficient": sdpa_runner("efficient"), "sdpa-cudnn": sdpa_runner("cudnn")}


def device_name():
    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"


def synchronize():
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def torch_version():
    return torch.__version__
