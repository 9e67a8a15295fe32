#!/usr/bin/env python3
"""bench/flex_bench.py — libflashmask's CUDA kernels against PyTorch FlexAttention at its best,
cuDNN and FlashAttention-2, in one process, on the same masks and the same card (docs/spec.md
§7).

Masks come from our builders (libflashmask through ctypes: fm_mask_params_default +
fm_mask_build). FlexAttention gets each family in two forms, both timed and recorded:
  * "user": the mask_mod a FlexAttention user writes for the family (`q >= k` for causal,
    document ids for the document families, `q - k < w` for the sliding window, ...; no block
    mask at all for the full mask), built from the family's parameters, and checked element by
    element against our bounds before it is timed (a benchmark of a different mask would
    measure nothing);
  * "lookup": a mask_mod reading our four bound vectors (the element rule of docs/spec.md §2),
    the only form for qk_sparse and random_eviction, whose masks have no simpler expression.
The ratios compare us with the faster of the two ("Flex at its best"). On the full and causal
masks SDPA's cuDNN and FlashAttention-2 backends run beside them. Every side runs bf16 on the
same q, k, v, dO; times are medians of triton.testing.do_bench (CUDA events). TFLOP/s count
allowed pairs only (fm_problem_flops: 4*D per allowed pair forward, 2.5x backward). A bf16
matmul (8192^3) is timed in the same run, before and after, as the card's ceiling.

Configs are HQxSxD or HQ:HKxSxD (GQA, e.g. 32:8x8192x128). Run on a GPU host, e.g.
    python3 bench/flex_bench.py --lib build/libflashmask.so --out bench/results/x.json
Forward kernels side by side, in the same process on the same inputs (e.g. the Hopper forward
and its ping-pong schedule), with --fwd-variants wgmma,pingpong: each row then also times our
forward with fwd=<each> and says whether its O and LSE are bit-identical to the previous one's;
--no-bwd leaves every backward out; --sdpa keeps cuDNN and FlashAttention-2 with --no-flex.
Backward kernels the same way with --bwd-variants wgmma,pipelined: each row also times our
backward with bwd=<each> (after the --kernel forward) and says whether its dK and dV (and, with
--deterministic, dQ) are bit-identical to the previous one's.

Layer: tools (benchmark), on top of the cuda layer.
"""
import argparse
import ctypes as C
import datetime
import glob
import itertools
import json
import math
import os
import platform
import statistics
import subprocess
import sys

import torch
import torch._functorch.config
import numpy as np
import triton
import torch._dynamo
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.nn.attention.flex_attention import create_block_mask, create_mask, flex_attention

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


class Params(C.Structure):  # fm_mask_params (flashmask/masks.h)
    _fields_ = [("family", C.c_int), ("window", C.c_int64), ("global_tokens", C.c_int64),
                ("left_window", C.c_int64), ("right_window", C.c_int64), ("prefix", C.c_int64),
                ("n_docs", C.c_int64), ("doc_lens", C.POINTER(C.c_int64)),
                ("doc_prefix", C.POINTER(C.c_int64)), ("n_samples", C.c_int64),
                ("sample_segments", C.POINTER(C.c_int64)), ("n_spans", C.c_int64),
                ("span_offset", C.POINTER(C.c_int64)), ("span_len", C.POINTER(C.c_int64)),
                ("evict_start", C.c_int64), ("seed", C.c_uint64)]


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
        if not os.path.exists(path):  # a build directory holds libflashmask.so.0...
            versioned = sorted(glob.glob(path + ".[0-9]*"))
            path = versioned[-1] if versioned else path
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
        """Our mask for the family's default parameters, and those parameters (as Python
        values, for the mask_mod a FlexAttention user would write)."""
        fam = C.c_int()
        self.check(self.so.fm_family_from_name(family.encode(), C.byref(fam)), family)
        # fm_mask_params in a generously sized buffer, read through the Params mirror
        buf = C.create_string_buffer(max(1024, C.sizeof(Params)))
        self.check(self.so.fm_mask_params_default(buf, fam, C.c_int64(seqlen)), "params")
        p = Params.from_buffer(buf)
        arr = lambda ptr, n: [ptr[i] for i in range(n)] if n > 0 and ptr else []
        params = {"window": p.window, "global_tokens": p.global_tokens,
                  "left_window": p.left_window, "right_window": p.right_window,
                  "prefix": p.prefix, "doc_lens": arr(p.doc_lens, p.n_docs),
                  "doc_prefix": arr(p.doc_prefix, p.n_docs) if family == "prefix_lm_document"
                  else [], "sample_segments": arr(p.sample_segments, p.n_samples)
                  if family == "shared_question" else []}
        mask = Mask()
        self.check(self.so.fm_mask_build(C.byref(mask), buf, batch, heads, seqlen, seqlen,
                                         CAUSAL_BOTTOM_RIGHT), "build " + family)
        self.so.fm_mask_params_free(buf)
        return mask, params


def bench_ms(fn):
    return triton.testing.do_bench(fn, warmup=50, rep=300, return_mode="median")


def matmul_tflops():
    n = 8192
    a = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    ms = bench_ms(lambda: a @ b)
    return 2 * n ** 3 / ms / 1e9


# The bounds-lookup mask_mod reads these module-level tensors, so one compiled kernel serves
# every family of a shape (dynamo guards on shapes, not values).
G = {}


def lookup_mask_mod(b, h, q_idx, kv_idx):
    hm = h // G["hdiv"]
    lts = G["bounds"][b, hm, kv_idx, 0]
    lte = G["bounds"][b, hm, kv_idx, 1]
    uts = G["bounds"][b, hm, kv_idx, 2]
    ute = G["bounds"][b, hm, kv_idx, 3]
    masked = ((q_idx >= lts) & (q_idx < lte)) | ((q_idx >= uts) & (q_idx < ute))
    masked = masked | ((G["causal"] != 0) & (kv_idx > q_idx + G["offset"]))
    return ~masked


def ids_of(lengths, n):
    """Segment id of every position, from segment lengths that sum to n."""
    t = torch.repeat_interleave(torch.arange(len(lengths)), torch.tensor(lengths))
    assert t.numel() == n, (t.numel(), n)
    return t.to("cuda")


def user_mask_mod(fam, p, n):
    """The mask_mod a FlexAttention user writes for the family (docs/spec.md §4, Sq = Sk = n),
    None for the full mask (no block mask at all), or "lookup" where no simpler form than
    reading the bounds exists."""
    if fam == "full":
        return None
    if fam == "causal":
        return lambda b, h, q, k: q >= k
    if fam == "sliding_window":
        w = p["window"]
        return lambda b, h, q, k: (q >= k) & (q - k < w)
    if fam in ("causal_document", "document", "causal_blockwise", "prefix_lm_document"):
        doc = ids_of(p["doc_lens"], n)
        if fam == "causal_document":
            return lambda b, h, q, k: (doc[q] == doc[k]) & (q >= k)
        if fam == "document":
            return lambda b, h, q, k: doc[q] == doc[k]
        if fam == "causal_blockwise":
            last = len(p["doc_lens"]) - 1
            return lambda b, h, q, k: (q >= k) & ((doc[q] == doc[k]) | (doc[q] == last))
        starts = torch.tensor([0] + list(itertools.accumulate(p["doc_lens"]))[:-1])
        prefix_end = (starts + torch.tensor(p["doc_prefix"])).to("cuda")
        return lambda b, h, q, k: (doc[q] == doc[k]) & ((k < prefix_end[doc[k]]) | (q >= k))
    if fam == "shared_question":
        seg = ids_of(p["doc_lens"], n)
        sample_of_seg = torch.repeat_interleave(torch.arange(len(p["sample_segments"])),
                                                torch.tensor(p["sample_segments"]))
        first = torch.tensor([0] + list(itertools.accumulate(p["sample_segments"]))[:-1])
        is_question_seg = torch.zeros(len(p["doc_lens"]), dtype=torch.bool)
        is_question_seg[first] = True
        sample = sample_of_seg.to("cuda")[seg]
        question = is_question_seg.to("cuda")[seg]
        return lambda b, h, q, k: (q >= k) & (sample[q] == sample[k]) & \
            (question[k] | (seg[q] == seg[k]))
    if fam == "global_sliding_window":
        g, wl, wr = p["global_tokens"], p["left_window"], p["right_window"]
        return lambda b, h, q, k: (k < g) | (q < g) | ((q - k <= wl) & (k - q <= wr))
    if fam == "prefix_lm_causal":
        pre = p["prefix"]
        return lambda b, h, q, k: (k < pre) | (q >= k)
    return "lookup"  # qk_sparse, random_eviction


def same_mask(mod, heads, n):
    """The user mask_mod allows exactly what our bounds allow (compared with the lookup form,
    on every head that differs, in chunks of query rows)."""
    rows = 1024
    for h in range(heads):
        for q0 in range(0, n, rows):
            q = torch.arange(q0, min(q0 + rows, n), device="cuda").view(-1, 1)
            k = torch.arange(n, device="cuda").view(1, -1)
            z = torch.zeros((), dtype=torch.int64, device="cuda")
            hh = torch.full((), h, dtype=torch.int64, device="cuda")
            if not torch.equal(mod(z, hh, q, k), lookup_mask_mod(z, hh, q, k)):
                return False
    return True


def flex_side(row, mask, params, heads, mheads, per_head, seqlen, q, k, v, do, out, fwd_flops,
              bwd_flops, flex_compiled, do_bwd=True):
    """FlexAttention on the same mask and the same tensors, in its user form and in the bounds
    lookup form; ratios against the faster."""
    nb = mask.batch * mask.heads * seqlen * 4
    host = np.ctypeslib.as_array(mask.bounds, shape=(nb,)).copy()
    G["bounds"] = torch.from_numpy(host).to("cuda").view(1, mheads, seqlen, 4)
    G["hdiv"] = heads // mheads
    G["causal"] = torch.tensor(int(mask.causal != CAUSAL_NONE), device="cuda")
    G["offset"] = torch.tensor(0, device="cuda")  # Sq == Sk: both alignments agree
    gqa = q.shape[1] != k.shape[1]
    forms = {"lookup": lookup_mask_mod}
    user = user_mask_mod(row["family"], params, seqlen)
    if user != "lookup":
        if user is not None and not same_mask(user, mheads, seqlen):
            raise RuntimeError(f"{row['family']}: the user mask_mod differs from our mask")
        forms["user"] = user
    for form, mod in forms.items():
        qf, kf, vf = (t.detach().clone().requires_grad_(True) for t in (q, k, v))
        # _compile=True: the mask is reduced to blocks without materialising B*H*S*S
        bm = None if mod is None else create_block_mask(
            mod, 1, heads if per_head else None, seqlen, seqlen, device="cuda",
            BLOCK_SIZE=128, _compile=True)
        fo = flex_compiled(qf, kf, vf, block_mask=bm, enable_gqa=gqa)
        # Same function: our forward against FlexAttention's, on identical inputs.
        row[f"max_abs_diff_vs_flex_{form}"] = (fo.float() - out.float()).abs().max().item()
        fwd_ms = bench_ms(lambda: flex_compiled(qf, kf, vf, block_mask=bm, enable_gqa=gqa))
        row[f"flex_{form}_fwd_tflops"] = fwd_flops / fwd_ms / 1e9
        if do_bwd:
            bwd_ms = bench_ms(lambda: fo.backward(do, retain_graph=True))
            row[f"flex_{form}_bwd_tflops"] = bwd_flops / bwd_ms / 1e9
        del fo, qf, kf, vf
    row["flex_fwd_tflops"] = max(row[f"flex_{f}_fwd_tflops"] for f in forms)
    row["ratio_fwd"] = row["ours_fwd_tflops"] / row["flex_fwd_tflops"]
    for name in row.get("fwd_variants", []):
        row[f"ratio_fwd_{name}"] = row[f"ours_fwd_tflops_{name}"] / row["flex_fwd_tflops"]
    if do_bwd:
        row["flex_bwd_tflops"] = max(row[f"flex_{f}_bwd_tflops"] for f in forms)
        row["ratio_bwd"] = row["ours_bwd_tflops"] / row["flex_bwd_tflops"]


def sdpa_side(row, q, k, v, do, fwd_flops, bwd_flops, do_bwd=True):
    """SDPA's cuDNN and FlashAttention-2 backends on the full and causal masks (Sq = Sk, so
    is_causal's top-left alignment is ours)."""
    causal = row["family"] == "causal"
    gqa = q.shape[1] != k.shape[1]
    for name, backend in (("cudnn", SDPBackend.CUDNN_ATTENTION),
                          ("fa2", SDPBackend.FLASH_ATTENTION)):
        try:
            qf, kf, vf = (t.detach().clone().requires_grad_(True) for t in (q, k, v))
            with sdpa_kernel(backend):
                run = lambda: F.scaled_dot_product_attention(qf, kf, vf, is_causal=causal,
                                                             enable_gqa=gqa)
                o = run()
                row[f"{name}_fwd_tflops"] = fwd_flops / bench_ms(run) / 1e9
                if do_bwd:
                    row[f"{name}_bwd_tflops"] = bwd_flops / bench_ms(
                        lambda: o.backward(do, retain_graph=True)) / 1e9
            del o, qf, kf, vf
        except Exception as e:  # recorded, not fatal
            row[f"{name}_error"] = f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"


def run_config(lib, heads, kv_heads, seqlen, dim, families, dtype, do_flex, flex_compiled,
               results, save=None, flags=0, kernel="auto", fwd_variants=(), do_bwd=True,
               do_sdpa=False, bwd_variants=()):
    torch.manual_seed(0)
    tdtype = torch.bfloat16 if dtype == BFLOAT16 else torch.float16
    qshape, kshape = (1, heads, seqlen, dim), (1, kv_heads, seqlen, dim)
    q, do = (torch.randn(qshape, device="cuda", dtype=tdtype) for _ in range(2))
    k, v = (torch.randn(kshape, device="cuda", dtype=tdtype) for _ in range(2))
    out = torch.empty_like(q)
    lse = torch.empty((1, heads, seqlen), device="cuda", dtype=torch.float32)
    dq, dk, dv = torch.empty_like(q), torch.empty_like(k), torch.empty_like(v)
    prob = Problem(1, heads, kv_heads, seqlen, seqlen, dim, 1.0 / math.sqrt(dim), dtype, flags)
    stream = torch.cuda.current_stream().cuda_stream
    kopt = lib.kernel_options(kernel)
    # --fwd-variants: the same options with another forward kernel each (a later fwd= wins)
    vopts = {name: lib.kernel_options(f"{kernel},fwd={name}") for name in fwd_variants}
    # --bwd-variants: the same options with another backward kernel each (a later bwd= wins)
    bopts = {name: lib.kernel_options(f"{kernel},bwd={name}") for name in bwd_variants}
    for fam in families:
        per_head = fam == "random_eviction"  # differs per (b, head)
        mheads = heads if per_head else 1
        mask, params = lib.build_mask(fam, 1, mheads, seqlen)
        fwd_flops = lib.so.fm_problem_flops(C.byref(prob), C.byref(mask), 0)
        bwd_flops = lib.so.fm_problem_flops(C.byref(prob), C.byref(mask), 1)
        dmask = CudaMask()
        lib.check(lib.so.fm_cuda_mask_upload(C.byref(mask), C.byref(dmask)), "upload")
        ptr = lambda t: C.c_void_p(t.data_ptr())

        def ours_fwd(o=kopt):
            lib.check(lib.so.fm_cuda_forward(C.byref(prob), C.byref(dmask), ptr(q), ptr(k),
                                             ptr(v), ptr(out), ptr(lse), C.byref(o),
                                             C.c_void_p(stream)), "forward")

        def ours_bwd(o=kopt):
            lib.check(lib.so.fm_cuda_backward(C.byref(prob), C.byref(dmask), ptr(q), ptr(k),
                                              ptr(v), ptr(out), ptr(lse), ptr(do), ptr(dq),
                                              ptr(dk), ptr(dv), C.byref(o), C.c_void_p(stream)),
                      "backward")

        ours_fwd()
        torch.cuda.synchronize()
        row = {"family": fam, "heads": heads, "kv_heads": kv_heads, "seqlen": seqlen,
               "head_dim": dim, "fwd_flops": fwd_flops, "bwd_flops": bwd_flops, "kernel": kernel}
        # The fraction of 64 x 64 tiles not fully masked (counted at upload), which picks the
        # Hopper backward's block shape (docs/performance-cuda.md).
        row["live_tile_fraction"] = dmask.live_per_kblock / ((seqlen + 63) // 64)
        if vopts:
            row["fwd_variants"] = list(vopts)
            prev = None
            for name, o in vopts.items():
                ours_fwd(o)
                torch.cuda.synchronize()
                # bit patterns: O as 16-bit words, LSE as 32-bit words (-inf rows included)
                bits = (out.view(torch.int16).clone(), lse.view(torch.int32).clone())
                prev = prev or bits
                row[f"fwd_bits_equal_prev_{name}"] = bool(torch.equal(bits[0], prev[0]) and
                                                          torch.equal(bits[1], prev[1]))
                prev = bits
                ms = bench_ms(lambda o=o: ours_fwd(o))
                row[f"ours_fwd_tflops_{name}"] = fwd_flops / ms / 1e9
            ours_fwd()  # the --kernel forward's out, which Flex is compared with
            torch.cuda.synchronize()
        row["ours_fwd_ms"] = bench_ms(ours_fwd)
        row["ours_fwd_tflops"] = fwd_flops / row["ours_fwd_ms"] / 1e9
        if do_bwd:
            row["ours_bwd_ms"] = bench_ms(ours_bwd)
            row["ours_bwd_tflops"] = bwd_flops / row["ours_bwd_ms"] / 1e9
        if do_bwd and bopts:
            row["bwd_variants"] = list(bopts)
            prev = None
            for name, o in bopts.items():
                ours_bwd(o)
                torch.cuda.synchronize()
                # dK, dV as 16-bit words; dQ too in deterministic mode (else its float32
                # additions come in a varying order)
                bits = [dk.view(torch.int16).clone(), dv.view(torch.int16).clone()]
                if flags:
                    bits.append(dq.view(torch.int16).clone())
                prev = prev or bits
                row[f"bwd_bits_equal_prev_{name}"] = all(torch.equal(a, b)
                                                         for a, b in zip(bits, prev))
                prev = bits
                ms = bench_ms(lambda o=o: ours_bwd(o))
                row[f"ours_bwd_tflops_{name}"] = bwd_flops / ms / 1e9
        if do_flex:
            try:
                flex_side(row, mask, params, heads, mheads, per_head, seqlen, q, k, v, do,
                          out, fwd_flops, bwd_flops, flex_compiled, do_bwd)
            except Exception as e:  # recorded, not fatal: the other rows stand
                row["flex_error"] = f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"
                print("flex failed:", row["flex_error"], flush=True)
                torch.cuda.empty_cache()
        if (do_flex or do_sdpa) and fam in ("full", "causal"):
            sdpa_side(row, q, k, v, do, fwd_flops, bwd_flops, do_bwd)
        lib.so.fm_cuda_mask_free(C.byref(dmask))
        lib.so.fm_mask_free(C.byref(mask))
        results.append(row)
        print(json.dumps(row), flush=True)
        if save:
            save()


def parse_config(cfg):
    """HQxSxD or HQ:HKxSxD -> (HQ, HK, S, D)."""
    heads, s, d = cfg.split("x")
    hq, _, hk = heads.partition(":")
    return int(hq), int(hk or hq), int(s), int(d)


def print_variant_table(kind, key, variants, tensors, results):
    """Our kernels side by side (--fwd-variants, --bwd-variants): TFLOP/s per variant, the ratio
    of the last to the first, and whether each variant's bits equal the previous one's."""
    print(f"\n{kind} variants (TFLOP/s; ratio: {variants[-1]} / {variants[0]}; bits: "
          f"whether each variant's {tensors} equal the previous variant's, 1/0)")
    print(f"{'config':>14} {'family':>22} " + " ".join(f"{v:>9}" for v in variants) +
          f" {'ratio':>6} {'bits':>5}")
    for r in results:
        t = [r[f"ours_{key}_tflops_{v}"] for v in variants]
        same = "".join(str(int(r[f"{key}_bits_equal_prev_{v}"])) for v in variants[1:])
        print(f"{config_name(r):>14} {r['family']:>22} " +
              " ".join(f"{x:9.1f}" for x in t) + f" {t[-1] / t[0]:6.2f} {same:>5}")


def config_name(r):
    heads = f"{r['heads']}" if r["kv_heads"] == r["heads"] else f"{r['heads']}:{r['kv_heads']}"
    return f"{heads}x{r['seqlen']}x{r['head_dim']}"


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
    ap.add_argument("--configs",
                    default="16x8192x128,16x32768x128,32x8192x64,32:8x8192x128",
                    help="comma list of HQxSEQLENxDIM or HQ:HKxSEQLENxDIM (GQA)")
    ap.add_argument("--families", default=",".join(FAMILIES))
    ap.add_argument("--no-flex", action="store_true", help="time only our kernels")
    ap.add_argument("--deterministic", action="store_true",
                    help="our backward with FM_FLAG_DETERMINISTIC (dQ without atomics)")
    ap.add_argument("--kernel", default="auto",
                    help="our kernels: auto (the heuristics), mma, wgmma, or a comma list of "
                         "fwd=..., bwd=... (auto, mma, wgmma, pipelined), shape=8x1|4x2|8x2, "
                         "wgs=1|2 (fm_kernel_options)")
    ap.add_argument("--fwd-variants", default="",
                    help="comma list of forward kernels (auto, mma, wgmma, pingpong, wide) each also "
                         "timed per row, on the same inputs, with --kernel's other options")
    ap.add_argument("--bwd-variants", default="",
                    help="comma list of backward kernels (auto, mma, wgmma, pipelined) each also "
                         "timed per row, on the same inputs, with --kernel's other options")
    ap.add_argument("--no-bwd", action="store_true", help="time forwards only")
    ap.add_argument("--sdpa", action="store_true",
                    help="with --no-flex: still time SDPA's cuDNN and FlashAttention-2 on the "
                         "full and causal masks")
    args = ap.parse_args()
    variants = [v for v in args.fwd_variants.split(",") if v]
    bvariants = [v for v in args.bwd_variants.split(",") if v] if not args.no_bwd else []

    # Timing backward repeatedly needs retain_graph=True, which compiled graphs with donated
    # buffers refuse.
    torch._functorch.config.donated_buffer = False
    # One compiled flex_attention serves every mask_mod; each user form is a recompile, which
    # must not hit dynamo's default limit of 8 (past it, dynamo falls back to eager).
    torch._dynamo.config.cache_size_limit = 512
    torch._dynamo.config.accumulated_cache_size_limit = 4096
    lib = Lib(args.lib)
    lib.check(lib.so.fm_cuda_available(), "cuda")
    flex_compiled = None if args.no_flex else torch.compile(flex_attention, dynamic=False)
    results = []
    mm = matmul_tflops()
    print(f"bf16 matmul 8192^3: {mm:.0f} TFLOP/s", flush=True)
    save = (lambda: write_json(args.out, mm, None, {}, results)) if args.out else None
    for cfg in args.configs.split(","):
        h, hk, s, d = parse_config(cfg)
        run_config(lib, h, hk, s, d, args.families.split(","), BFLOAT16, not args.no_flex,
                   flex_compiled, results, save, 1 if args.deterministic else 0, args.kernel,
                   variants, not args.no_bwd, args.sdpa, bvariants)
        torch.cuda.empty_cache()
    mm_after = matmul_tflops()

    nan = float("nan")
    print(f"\nbf16 matmul: {mm:.0f} (before) / {mm_after:.0f} (after) TFLOP/s")
    print(f"{'config':>14} {'family':>22} {'ours fwd':>9} {'flex fwd':>9} {'ratio':>6} "
          f"{'ours bwd':>9} {'flex bwd':>9} {'ratio':>6}")
    for r in results:
        cfg = config_name(r)
        print(f"{cfg:>14} {r['family']:>22} {r['ours_fwd_tflops']:9.1f} "
              f"{r.get('flex_fwd_tflops', nan):9.1f} {r.get('ratio_fwd', nan):6.2f} "
              f"{r.get('ours_bwd_tflops', nan):9.1f} {r.get('flex_bwd_tflops', nan):9.1f} "
              f"{r.get('ratio_bwd', nan):6.2f}")
    if variants:
        print_variant_table("forward", "fwd", variants, "O and LSE", results)
    if bvariants:
        print_variant_table("backward", "bwd", bvariants,
                            "dK, dV" + (" and dQ" if args.deterministic else ""), results)
    summary = {}
    for cfg in args.configs.split(","):
        rows = [r for r in results if config_name(r) == cfg]
        rated = [r for r in rows if "ratio_fwd" in r]
        if rated:
            summary[cfg] = {"families_compared": len(rated),
                            "geomean_ratio_fwd": geomean([r["ratio_fwd"] for r in rated]),
                            "min_ratio_fwd": min(r["ratio_fwd"] for r in rated)}
            if not args.no_bwd:
                summary[cfg]["geomean_ratio_bwd"] = geomean([r["ratio_bwd"] for r in rated])
                summary[cfg]["min_ratio_bwd"] = min(r["ratio_bwd"] for r in rated)
            for v in variants:
                summary[cfg][f"geomean_ratio_fwd_{v}"] = geomean(
                    [r[f"ratio_fwd_{v}"] for r in rated])
        full = [r for r in rows if r["family"] == "full"]
        if full:
            summary.setdefault(cfg, {})["full_fwd_fraction_of_matmul"] = \
                full[0]["ours_fwd_tflops"] / mm
            for v in variants:
                summary[cfg][f"full_fwd_fraction_of_matmul_{v}"] = \
                    full[0][f"ours_fwd_tflops_{v}"] / mm
        if len(variants) > 1 and rows:
            summary.setdefault(cfg, {})[f"geomean_fwd_{variants[-1]}_over_{variants[0]}"] = \
                geomean([r[f"ours_fwd_tflops_{variants[-1]}"] / r[f"ours_fwd_tflops_{variants[0]}"]
                         for r in rows])
            for v in variants[1:]:
                summary[cfg][f"fwd_bits_equal_prev_{v}_rows"] = sum(
                    r[f"fwd_bits_equal_prev_{v}"] for r in rows)
        if len(bvariants) > 1 and rows:
            summary.setdefault(cfg, {})[f"geomean_bwd_{bvariants[-1]}_over_{bvariants[0]}"] = \
                geomean([r[f"ours_bwd_tflops_{bvariants[-1]}"] /
                         r[f"ours_bwd_tflops_{bvariants[0]}"] for r in rows])
            for v in bvariants[1:]:
                summary[cfg][f"bwd_bits_equal_prev_{v}_rows"] = sum(
                    r[f"bwd_bits_equal_prev_{v}"] for r in rows)
        if cfg in summary:
            print(cfg, json.dumps(summary[cfg]))
    if args.out:
        write_json(args.out, mm, mm_after, summary, results)


if __name__ == "__main__":
    sys.exit(main())
