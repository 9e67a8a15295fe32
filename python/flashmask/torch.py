"""flashmask.torch — libflashmask in PyTorch's call shapes, with autograd.

    from flashmask.torch import flashmask_attention, flash_attn_func, attention
    out = flashmask_attention(q, k, v, startend_row_indices, causal=True)   # Paddle's names
    out = flash_attn_func(q, k, v, causal=True, window_size=(128, 0))      # flash_attn's
    out = attention(q, k, v, mask, layout="bhsd")                          # a flashmask.Mask
    mask = from_block_mask(block_mask)          # FlexAttention BlockMask -> ours (or BBM)
    block_mask = to_block_mask(mask)            # ours -> FlexAttention BlockMask

Tensors: [B, S, H, D] for the Paddle and flash_attn entry points (as theirs), `layout` for
attention(). CUDA tensors (float16/bfloat16) run our CUDA kernels on their device pointers
(flashmask.tensors) and return tensors of the input dtype on the same device; CPU tensors run
the float32 'cpu' layer, or the float64 'reference' for float64 tensors (torch.autograd.gradcheck
works on it). `impl=` overrides. Gradients come from the same implementation's backward.
Not supported (refused with a message, never ignored): dropout, ALiBi, returning probabilities.

FlexAttention (torch >= 2.5): from_block_mask / from_mask_mod give our column form when the mask
is representable in it, else a Binary Block Masking object (flashmask.sparse.BBM);
to_block_mask builds torch's BlockMask when torch has one, else a plain object with the same
fields (kv_num_blocks, kv_indices, full_kv_num_blocks, full_kv_indices, BLOCK_SIZE, seq_lengths,
mask_mod). Layer: python, over tensors.py, mask.py, sparse.py and _cuda.py.
"""

import ctypes

import numpy as np
import torch

from . import _cuda, _lib, sparse, tensors
from ._lib import InvalidInput, lib
from .mask import Mask, build

# ------------------------------------------------------------------ autograd


def _impl_for(q, impl):
    if impl:
        return impl
    if q.is_cuda:
        return "cuda"
    return "reference" if q.dtype == torch.float64 else "cpu"


class _Attention(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v, mask, scale, impl, layout, deterministic):
        out, lse = tensors.forward(q.detach(), k.detach(), v.detach(), mask, layout=layout,
                                   scale=scale, impl=impl, deterministic=deterministic)
        ctx.save_for_backward(q, k, v, out, lse)
        ctx.args = (mask, scale, impl, layout, deterministic)
        ctx.mark_non_differentiable(lse)
        return out, lse

    @staticmethod
    def backward(ctx, dout, _dlse):
        q, k, v, out, lse = ctx.saved_tensors
        mask, scale, impl, layout, deterministic = ctx.args
        dq, dk, dv = tensors.backward(q.detach(), k.detach(), v.detach(), out, lse,
                                      dout.contiguous(), mask, layout=layout, scale=scale,
                                      impl=impl, deterministic=deterministic)
        return dq, dk, dv, None, None, None, None, None


def attention(q, k, v, mask, *, layout="bhsd", scale=None, impl=None, deterministic=False,
              return_lse=False):
    """FlashMask attention with autograd. `mask` a flashmask.Mask over (Sq, Sk) of these
    tensors; `layout` 'bhsd' or 'bshd' (required to be right: it is not guessed). Returns out
    (and lse [B, H, Sq] float32 when return_lse)."""
    if not isinstance(mask, Mask):
        raise InvalidInput(1, f"mask: a {type(mask).__name__}, expected a flashmask.Mask "
                           "(from_block_mask / from_mask_mod convert FlexAttention masks)",
                           "mask")
    out, lse = _Attention.apply(q, k, v, mask, scale, _impl_for(q, impl), layout,
                                deterministic)
    return (out, lse) if return_lse else out


# ------------------------------------------------------------------ masks from flags

def window_mask(batch, seqlen_q, seqlen_k, causal=False, window_size=(-1, -1)):
    """flash_attn's mask: query i may see key j iff i + Sk - Sq - left <= j <= i + Sk - Sq +
    right (bottom-right aligned; -1 = no limit on that side; causal sets right = 0). Built as
    column bounds directly (no dense matrix): for column j the rows after j - off + left are
    masked (LT) and the rows before j - off - right (UT), off = Sk - Sq."""
    left, right = (int(w) for w in window_size)
    if causal:
        right = 0
    if left < 0 and right < 0:
        return build("full", batch=batch, seqlen_q=seqlen_q, seqlen_k=seqlen_k)
    if left < 0 and right == 0:
        return build("causal", batch=batch, seqlen_q=seqlen_q, seqlen_k=seqlen_k)
    j = np.arange(seqlen_k, dtype=np.int64)
    off = seqlen_k - seqlen_q
    b = np.zeros((seqlen_k, 4), np.int64)
    b[:, 0] = np.clip(j - off + left + 1, 0, seqlen_q) if left >= 0 else seqlen_q
    b[:, 1] = seqlen_q
    b[:, 3] = np.clip(j - off - right, 0, seqlen_q) if right >= 0 else 0
    b[:, 0] = np.minimum(b[:, 0], b[:, 1])
    bounds = np.broadcast_to(b, (batch, 1, seqlen_k, 4))
    return Mask(bounds, seqlen_q, "none")


def _refuse(cond, what):
    if cond:
        raise InvalidInput(1, f"{what} is not supported by libflashmask (refused rather than "
                           "ignored)", what.split()[0])


# ------------------------------------------------------------------ the peers' call shapes

def flashmask_attention(query, key, value, startend_row_indices=None, *, dropout=0.0,
                        causal=False, window_size=None, return_softmax_lse=False,
                        return_seed_offset=False, fixed_seed_offset=None, rng_name="",
                        training=True, name=None, softmax_scale=None, impl=None,
                        deterministic=False):
    """Paddle's paddle.nn.functional.flashmask_attention: query [B, Sq, H, D], key/value
    [B, Sk, Hk, D], startend_row_indices int32 [B, Hm, Sk, C] (C in 1, 2, 4; docs/masks.md §6)
    or None; causal as Paddle's (bottom-right aligned when Sq != Sk). window_size (int or
    (left, right)) only without startend_row_indices. Returns out [B, Sq, H, D], and the lse
    [B, H, Sq] when return_softmax_lse."""
    _refuse(dropout and training, "dropout > 0")
    _refuse(return_seed_offset or fixed_seed_offset is not None, "seed_offset (dropout)")
    B, Sq, Sk = query.shape[0], query.shape[1], key.shape[1]
    if startend_row_indices is not None:
        if window_size is not None:
            raise InvalidInput(1, "window_size with startend_row_indices: encode the window in "
                               "startend_row_indices", "window_size")
        se = tensors.to_host(startend_row_indices, "startend_row_indices")
        mask = Mask.from_startend(se, Sq, "bottom_right" if causal else "none")
    else:
        if window_size is None:
            window_size = (-1, -1)
        elif np.ndim(window_size) == 0:
            window_size = (int(window_size), int(window_size))
        mask = window_mask(B, Sq, Sk, causal, window_size)
    return attention(query, key, value, mask, layout="bshd", scale=softmax_scale, impl=impl,
                     deterministic=deterministic, return_lse=return_softmax_lse)


def flash_attn_func(q, k, v, dropout_p=0.0, softmax_scale=None, causal=False,
                    window_size=(-1, -1), softcap=0.0, alibi_slopes=None, deterministic=False,
                    return_attn_probs=False, *, impl=None):
    """flash_attn.flash_attn_func: q [B, Sq, H, D], k/v [B, Sk, Hk, D]; causal and window_size
    mapped to our masks (window_mask). With return_attn_probs: (out, lse, None) like
    flash_attn's (no probabilities)."""
    _refuse(dropout_p, "dropout_p > 0")
    _refuse(softcap, "softcap")
    _refuse(alibi_slopes is not None, "alibi_slopes")
    mask = window_mask(q.shape[0], q.shape[1], k.shape[1], causal, window_size)
    out, lse = attention(q, k, v, mask, layout="bshd", scale=softmax_scale, impl=impl,
                         deterministic=deterministic, return_lse=True)
    return (out, lse, None) if return_attn_probs else out


# ------------------------------------------------------------------ FlexAttention

def _flex():
    try:
        from torch.nn.attention import flex_attention
        return flex_attention
    except ImportError:
        return None


class BlockMaskFields:
    """FlexAttention's BlockMask fields, for a torch without flex_attention (or a caller that
    wants the arrays): int32 tensors kv_num_blocks [B, H, nq], kv_indices [B, H, nq, nk],
    full_kv_num_blocks, full_kv_indices; BLOCK_SIZE (q, kv); seq_lengths (Sq, Sk); mask_mod."""

    def __init__(self, kv_num_blocks, kv_indices, full_kv_num_blocks, full_kv_indices,
                 BLOCK_SIZE, seq_lengths, mask_mod):
        self.kv_num_blocks, self.kv_indices = kv_num_blocks, kv_indices
        self.full_kv_num_blocks, self.full_kv_indices = full_kv_num_blocks, full_kv_indices
        self.BLOCK_SIZE, self.seq_lengths, self.mask_mod = BLOCK_SIZE, seq_lengths, mask_mod


def mask_mod_of(mask, heads=None, device=None):
    """A FlexAttention mask_mod(b, h, q_idx, kv_idx) -> bool tensor equal to `mask` (query head
    h uses mask head h // (heads / Hm); `heads` is needed when the mask has several heads). The
    bounds it reads live on `device` (where flex_attention will run it)."""
    bounds = torch.from_numpy(mask.bounds.astype(np.int64)).to(device or "cpu")
    Hm, Sq, Sk = mask.heads, mask.seqlen_q, mask.seqlen_k
    if Hm > 1 and heads is None:
        raise InvalidInput(1, f"the mask has {Hm} heads: give heads= (the query heads)", "heads")
    group = 1 if Hm == 1 else heads // Hm
    causal, off = mask.causal, Sk - Sq

    def mask_mod(b, h, q_idx, kv_idx):
        bd = bounds if bounds.device == q_idx.device else bounds.to(q_idx.device)
        hm = h // group if Hm > 1 else torch.zeros_like(h)
        col = bd[b, hm, kv_idx]
        lts, lte, uts, ute = col[..., 0], col[..., 1], col[..., 2], col[..., 3]
        masked = ((q_idx >= lts) & (q_idx < lte)) | ((q_idx >= uts) & (q_idx < ute))
        if causal == "bottom_right":
            masked = masked | (kv_idx > q_idx + off)
        elif causal == "top_left":
            masked = masked | (kv_idx > q_idx)
        return ~masked

    return mask_mod


def to_block_mask(mask, q_block=128, kv_block=128, heads=None, device=None):
    """Our mask as FlexAttention's BlockMask (torch.nn.attention.flex_attention.BlockMask when
    torch has it, else BlockMaskFields), tiles of q_block x kv_block, with an exact mask_mod."""
    fb = _cuda.FlexBlockMask()
    cm = mask.c()
    _lib.check(lib.fm_mask_to_flex_blocks(ctypes.byref(cm), q_block, kv_block, ctypes.byref(fb)),
               "to_block_mask")
    try:
        B, H, nq, nk = fb.batch, fb.heads, fb.n_q_blocks, fb.n_kv_blocks

        def grab(ptr, shape):
            n = int(np.prod(shape))
            return torch.from_numpy(np.ctypeslib.as_array(ptr, shape=(n,)).reshape(shape).copy())

        arrays = [grab(fb.kv_num_blocks, (B, H, nq)), grab(fb.kv_indices, (B, H, nq, nk)),
                  grab(fb.full_kv_num_blocks, (B, H, nq)),
                  grab(fb.full_kv_indices, (B, H, nq, nk))]
    finally:
        lib.fm_flex_block_mask_free(ctypes.byref(fb))
    if device is not None:
        arrays = [a.to(device) for a in arrays]
    mod = mask_mod_of(mask, heads, device)
    flex = _flex()
    if flex is not None and hasattr(flex.BlockMask, "from_kv_blocks"):
        try:
            return flex.BlockMask.from_kv_blocks(*arrays, BLOCK_SIZE=(q_block, kv_block),
                                                 mask_mod=mod,
                                                 seq_lengths=(mask.seqlen_q, mask.seqlen_k))
        except TypeError:  # torch 2.5: no seq_lengths (the lengths are the blocks')
            return flex.BlockMask.from_kv_blocks(*arrays, BLOCK_SIZE=(q_block, kv_block),
                                                 mask_mod=mod)
    return BlockMaskFields(*arrays, (q_block, kv_block), (mask.seqlen_q, mask.seqlen_k), mod)


def _dense_of_mask_mod(mask_mod, B, H, Sq, Sk, device="cpu"):
    """mask_mod evaluated on every (b, h, q, kv): bool [B, H, Sq, Sk] (torch's create_mask where
    it exists, else broadcasting index tensors)."""
    flex = _flex()
    if flex is not None and hasattr(flex, "create_mask"):
        return flex.create_mask(mask_mod, B, H, Sq, Sk, device=device).to(torch.bool)
    b = torch.arange(B, device=device).view(B, 1, 1, 1)
    h = torch.arange(H, device=device).view(1, H, 1, 1)
    q = torch.arange(Sq, device=device).view(1, 1, Sq, 1)
    kv = torch.arange(Sk, device=device).view(1, 1, 1, Sk)
    return torch.as_tensor(mask_mod(b, h, q, kv)).to(torch.bool).expand(B, H, Sq, Sk)


def _from_dense(allowed, q_block, kv_block):
    """The column form if representable (exact), else Binary Block Masking."""
    a = np.ascontiguousarray(allowed.cpu().numpy().astype(np.uint8))
    try:
        return Mask.from_dense(a)
    except _lib.FlashMaskError as e:
        if e.status != 2:  # not representable
            raise
        return sparse.BBM(a, q_block, kv_block)


def from_mask_mod(mask_mod, B, H, Sq, Sk, q_block=128, kv_block=128):
    """A FlexAttention mask_mod over [B, H, Sq, Sk] (None for B or H: 1, broadcast) as our
    column-form Mask when representable, else a sparse.BBM with q_block x kv_block tiles."""
    B, H = B or 1, H or 1
    return _from_dense(_dense_of_mask_mod(mask_mod, B, H, Sq, Sk), q_block, kv_block)


def from_block_mask(block_mask):
    """A FlexAttention BlockMask (or BlockMaskFields) as our Mask (or sparse.BBM): full blocks
    allowed, partial blocks through its mask_mod, the rest masked."""
    qb, kb = block_mask.BLOCK_SIZE if isinstance(block_mask.BLOCK_SIZE, (tuple, list)) else \
        (block_mask.BLOCK_SIZE, block_mask.BLOCK_SIZE)
    lengths = getattr(block_mask, "seq_lengths", None) or tuple(block_mask.shape[-2:])
    Sq, Sk = (int(x) for x in lengths)
    num, idx = block_mask.kv_num_blocks.cpu(), block_mask.kv_indices.cpu()
    B, H, nq = num.shape
    blocks = torch.zeros((B, H, nq, -(-Sk // kb)), dtype=torch.int8)  # 0 none, 1 partial, 2 full

    def mark(num, idx, code):
        n = idx.shape[-1]
        live = torch.arange(n).view(1, 1, 1, n) < num.unsqueeze(-1)
        bb, hh, qq, slot = torch.nonzero(live, as_tuple=True)
        blocks[bb, hh, qq, idx[bb, hh, qq, slot].long()] = code

    mark(num, idx, 1)
    if getattr(block_mask, "full_kv_num_blocks", None) is not None:
        mark(block_mask.full_kv_num_blocks.cpu(), block_mask.full_kv_indices.cpu(), 2)
    elem = blocks.repeat_interleave(qb, dim=2)[:, :, :Sq].repeat_interleave(kb, dim=3)[..., :Sk]
    allowed = elem == 2
    if bool((elem == 1).any()):
        if getattr(block_mask, "mask_mod", None) is None:
            raise InvalidInput(1, "the BlockMask has partial blocks but no mask_mod", "block_mask")
        allowed = allowed | ((elem == 1) & _dense_of_mask_mod(block_mask.mask_mod, B, H, Sq, Sk))
    return _from_dense(allowed, qb, kb)


__all__ = ["attention", "flashmask_attention", "flash_attn_func", "window_mask",
           "to_block_mask", "from_block_mask", "from_mask_mod", "mask_mod_of",
           "BlockMaskFields"]
