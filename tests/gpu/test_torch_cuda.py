"""tests/gpu/test_torch_cuda.py — flashmask.torch and flashmask.tensors on CUDA tensors and
against PyTorch's own FlexAttention, for a GPU host with PyTorch >= 2.5 (tools/gpu/torch_cuda.sh
runs it; without a GPU or our CUDA layer every test is skipped, so it cannot pass by accident
there: the script also fails when everything was skipped).

* zero copy: a contiguous [B, H, S, D] float16/bfloat16 CUDA tensor reaches fm_cuda_forward /
  fm_cuda_backward as its own data pointer (pointer identity), the result tensors are the
  buffers the kernels wrote, and no tensor is copied to the host (Tensor.cpu / .numpy trapped);
* results: dtype and device of the input, and the oracle's verdict (pass rule, docs/spec.md §5)
  on forward and backward, for several families, both layouts, GQA, a padded head dimension,
  Paddle's flashmask_attention and flash_attn_func;
* FlexAttention: create_block_mask(causal) converts to our causal mask exactly and
  to_block_mask(our mask) equals create_block_mask's arrays; our mask_mod drives
  flex_attention to results that pass the oracle, as ours do.
"""

import os
import unittest

import numpy as np
import torch

import flashmask as fm
from flashmask import _cuda, tensors
from flashmask import torch as ft

CUDA = torch.cuda.is_available() and _cuda.available()
DEV = "cuda"


def rnd(shape, dtype, seed, layout="bhsd"):
    g = torch.Generator(device="cpu").manual_seed(seed)
    return torch.randn(shape, generator=g, dtype=torch.float32).to(DEV, dtype)


@unittest.skipUnless(CUDA, "no CUDA device or no CUDA layer in this libflashmask")
class TestZeroCopy(unittest.TestCase):
    def test_device_pointers_and_no_host_copy(self):
        m = fm.build("causal_document", seqlen_q=512, doc_lens=[200, 312])
        q, k, v, do = (rnd((1, 4, 512, 128), torch.bfloat16, s) for s in range(4))
        for x in (q, k, v):
            x.requires_grad_()
        seen = {}
        real_fwd, real_bwd = _cuda.forward, _cuda.backward

        def spy_fwd(p, dm, *args):  # q, k, v, out, lse, stream
            seen["fwd"] = [x.value for x in args[:5]]
            return real_fwd(p, dm, *args)

        def spy_bwd(p, dm, *args):  # q, k, v, out, lse, dout, dq, dk, dv, stream
            seen["bwd"] = [x.value for x in args[:9]]
            return real_bwd(p, dm, *args)

        def trap(*a, **kw):
            raise AssertionError("a tensor was copied to the host")

        saved = torch.Tensor.cpu, torch.Tensor.numpy
        _cuda.forward, _cuda.backward = spy_fwd, spy_bwd
        torch.Tensor.cpu, torch.Tensor.numpy = trap, trap
        try:
            out, lse = ft.attention(q, k, v, m, layout="bhsd", return_lse=True)
            out.backward(do)
        finally:
            _cuda.forward, _cuda.backward = real_fwd, real_bwd
            torch.Tensor.cpu, torch.Tensor.numpy = saved
        self.assertEqual(seen["fwd"][:3], [q.data_ptr(), k.data_ptr(), v.data_ptr()])
        self.assertEqual(seen["fwd"][3:5], [out.data_ptr(), lse.data_ptr()])
        self.assertEqual(seen["bwd"][:3], [q.data_ptr(), k.data_ptr(), v.data_ptr()])
        self.assertEqual(seen["bwd"][3:6], [out.data_ptr(), lse.data_ptr(), do.data_ptr()])
        for t in (out, q.grad, k.grad, v.grad):
            self.assertEqual((t.dtype, t.device.type), (torch.bfloat16, "cuda"))
        self.assertEqual(lse.dtype, torch.float32)


def judge(q, k, v, do, mask, layout, impl_kwargs=None, call=None):
    """Forward + backward through autograd on CUDA, judged by the oracle on the host."""
    q, k, v = (x.detach().requires_grad_() for x in (q, k, v))
    if call is None:
        out, lse = ft.attention(q, k, v, mask, layout=layout, return_lse=True)
    else:
        out, lse = call(q, k, v)
    out.backward(do)
    dtype = str(q.dtype).replace("torch.", "")
    cand = {"out": out, "lse": lse, "dq": q.grad, "dk": k.grad, "dv": v.grad}
    return tensors.check(q, k, v, do, mask, cand, dtype, layout=layout)


@unittest.skipUnless(CUDA, "no CUDA device or no CUDA layer in this libflashmask")
class TestResults(unittest.TestCase):
    def test_families_layouts_dtypes(self):
        for family in ("causal", "sliding_window", "causal_document", "shared_question",
                       "global_sliding_window", "random_eviction"):
            for dtype, layout, (H, Hk), D in ((torch.bfloat16, "bhsd", (4, 4), 128),
                                             (torch.float16, "bshd", (4, 2), 64),
                                             (torch.bfloat16, "bshd", (2, 1), 80)):
                S = 384
                m = fm.build(family, heads=1, seqlen_q=S)
                shp = lambda h: (1, h, S, D) if layout == "bhsd" else (1, S, h, D)  # noqa
                q, do = rnd(shp(H), dtype, 1), rnd(shp(H), dtype, 4)
                k, v = rnd(shp(Hk), dtype, 2), rnd(shp(Hk), dtype, 3)
                rep = judge(q, k, v, do, m, layout)
                self.assertTrue(rep.passed, f"{family} {dtype} {layout} {H}/{Hk} D={D}\n"
                                + rep.table())

    def test_paddle_and_flash_attn_shapes(self):
        B, S, H, D = 2, 256, 4, 64
        se = np.zeros((B, 1, S, 1), np.int32)
        se[:, 0, :, 0] = np.where(np.arange(S) < 100, 100, S)
        q, k, v, do = (rnd((B, S, H, D), torch.bfloat16, s) for s in range(4))
        m = fm.Mask.from_startend(se, S, "bottom_right")
        sei = torch.tensor(se, device=DEV)
        rep = judge(q, k, v, do, m, "bshd", call=lambda a, b, c: ft.flashmask_attention(
            a, b, c, sei, causal=True, return_softmax_lse=True))
        self.assertTrue(rep.passed, rep.table())
        w = ft.window_mask(B, S, S, True, (31, 0))
        rep = judge(q, k, v, do, w, "bshd", call=lambda a, b, c: ft.flash_attn_func(
            a, b, c, causal=True, window_size=(31, 0), return_attn_probs=True)[:2])
        self.assertTrue(rep.passed, rep.table())


@unittest.skipUnless(CUDA and ft._flex() is not None, "no CUDA or no FlexAttention")
class TestFlexAttention(unittest.TestCase):
    def test_causal_block_mask_both_ways(self):
        flex = ft._flex()
        for S in (1000, 1024):  # ragged and whole blocks
            bm = flex.create_block_mask(lambda b, h, q, kv: q >= kv, None, None, S, S,
                                        device=DEV)
            ours = ft.from_block_mask(bm)
            self.assertIsInstance(ours, fm.Mask)
            self.assertTrue((ours.to_dense() == fm.build("causal", seqlen_q=S).to_dense()).all())
        # back to the same arrays. (At a ragged edge create_block_mask pads with masked
        # elements and so calls the last row of blocks partial where fm_mask_to_flex_blocks,
        # counting only elements that exist, calls them full: both exact, compared at S = 1024.)
        back = ft.to_block_mask(fm.build("causal", seqlen_q=S), *bm.BLOCK_SIZE, device=DEV)
        for name in ("kv_num_blocks", "kv_indices", "full_kv_num_blocks", "full_kv_indices"):
            a, b = getattr(back, name), getattr(bm, name)
            n = getattr(bm, "kv_num_blocks" if "full" not in name else "full_kv_num_blocks")
            if name.endswith("indices"):  # only the first num entries of each row are defined
                live = torch.arange(a.shape[-1], device=DEV) < n.unsqueeze(-1)
                a, b = a[live], b[live]
            self.assertTrue(torch.equal(a.to(DEV), b), name)

    def test_flex_attention_with_our_mask_mod(self):
        flex = ft._flex()
        S, D = 512, 64
        for family in ("causal_document", "sliding_window", "prefix_lm_document"):
            m = fm.build(family, seqlen_q=S)
            bm = ft.to_block_mask(m, 128, 128, device=DEV)
            mine = flex.create_block_mask(ft.mask_mod_of(m, device=DEV), None, None, S, S,
                                          device=DEV)
            self.assertTrue(torch.equal(bm.kv_num_blocks, mine.kv_num_blocks), family)
            q, k, v = (rnd((1, 2, S, D), torch.bfloat16, s) for s in range(3))
            out, flex_lse = flex.flex_attention(q, k, v, block_mask=bm, return_lse=True)
            ours, lse = ft.attention(q, k, v, m, return_lse=True)
            cand = {"out": out, "lse": flex_lse}
            rep = tensors.check(q, k, v, None, m, cand, "bfloat16", forward_only=True)
            self.assertTrue(rep.passed, family + "\n" + rep.table())
            rep = tensors.check(q, k, v, None, m, {"out": ours, "lse": lse}, "bfloat16",
                                forward_only=True)
            self.assertTrue(rep.passed, family + " (ours)\n" + rep.table())
            again = ft.from_mask_mod(ft.mask_mod_of(m, device=DEV), 1, 1, S, S)
            self.assertTrue((again.to_dense() == m.to_dense()).all(), family)


if __name__ == "__main__":
    unittest.main(verbosity=2)
