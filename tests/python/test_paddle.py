"""tests/python/test_paddle.py — the traps of porting masks from Paddle's FlashMask, checked on
small cases: Paddle's test generators and its `flashmask_attention(window_size=...)` rebuilt by
hand in NumPy (formulas restated from PaddlePaddle/Paddle's flashmask tests and
PaddlePaddle/flash-attention's flashmask interface.py, as docs/masks.md §6 cites them), Paddle's
own reading of the vectors (its tests' startend_row_indices_to_attn_bias: causal bottom-right,
rows [0, max(0, j - (Sk - Sq))) of column j masked), and our conversions. Every conversion
claim of docs/masks.md §6 "Porting from Paddle" has a test here.

Run: FLASHMASK_LIB=build/libflashmask.so PYTHONPATH=python /usr/bin/python3 -m unittest -v
tests/python/test_paddle.py  (meson test --suite python does this).
Layer: tests of python/ (masks/startend.c, masks/ builders).
"""

import itertools
import unittest

import numpy as np

import flashmask as fm


# ------------------------------------------------------------------ Paddle, restated in NumPy

def paddle_allowed(se, sq, causal):
    """Paddle's reading of startend_row_indices [B, Hm, Sk, C] (its tests' attention-bias
    reference), independent of libflashmask: allowed [B, Hm, Sq, Sk]."""
    B, H, sk, C = se.shape
    masked = np.zeros((B, H, sq, sk), dtype=bool)
    has_end = (causal and C == 2) or (not causal and C == 4)
    for b, h, j in itertools.product(range(B), range(H), range(sk)):
        v = se[b, h, j]
        if has_end:
            masked[b, h, v[0]:v[1], j] = True
        else:
            masked[b, h, v[0]:, j] = True
        if causal:  # bottom-right, whatever Sq and Sk
            masked[b, h, :max(0, j - (sk - sq)), j] = True
        elif has_end:
            masked[b, h, v[2]:v[3], j] = True
        else:
            masked[b, h, :v[1], j] = True
    return ~masked


def col(values):
    return np.asarray(values, dtype=np.int32).reshape(1, 1, -1, 1)


def gen_document_quirk(lens, sk):
    """generate_document_mask as one version of Paddle's tests writes it: LTS = end of the
    key's document, UTE advanced by the *next* document's length (the quirk)."""
    lts, ute, cur = [], [], lens[0]
    for i, n in enumerate(lens):
        lts += [cur] * n
        if i < len(lens) - 1:
            cur += lens[i + 1]
    cur = 0
    for i, n in enumerate(lens):
        ute += [cur] * n
        if i < len(lens) - 1:
            cur += lens[i + 1]
    pad = sk - sum(lens)
    lts += [lts[-1]] * pad
    ute += [ute[-1]] * pad
    return np.concatenate([col(lts), col(ute)], axis=-1)


def gen_causal_document(lens, sq, sk):
    """generate_causal_document_mask with Sq and Sk: LTS = end of the key's document in key
    positions, padded to Sk, clipped to Sq (not shifted)."""
    lens = list(lens)
    lens[-1] += sk - sum(lens)
    return np.minimum(col(np.repeat(np.cumsum(lens), lens)), sq)


def gen_document(lens, sq, sk):
    """generate_document_mask (the version without the quirk): LTS = end of the key's document,
    UTE = its start, padding to Sk, clipped to Sq."""
    ends = np.repeat(np.cumsum(lens), lens)
    starts = np.repeat(np.cumsum([0] + list(lens[:-1])), lens)
    pad = sk - sum(lens)
    lts = list(ends) + [ends[-1]] * pad
    ute = list(starts) + [starts[-1]] * pad
    return np.minimum(np.concatenate([col(lts), col(ute)], axis=-1), sq)


def gen_causal(sk):
    """generate_causal_mask: C = 1 with LTS = Sk for every key (nothing masked but causal)."""
    return col([sk] * sk)


def gen_sliding_window(w, sq, sk):
    """generate_sliding_window_mask(window_size=w): LTS = min(j + w, Sq), causal."""
    return np.minimum(col(np.arange(w, sk + w)), sq)


def flashmask_window_size(w, s):
    """What flashmask_attention(causal=True, window_size=w) builds: LTS = min(j + w + 1, S)."""
    return np.minimum(col(np.arange(w + 1, s + w + 1)), s)


# ------------------------------------------------------------------ tests

class TestPaddleReading(unittest.TestCase):
    """Our from_startend reads Paddle's forms as Paddle does (causal = bottom_right)."""

    def test_reading_matches_paddle(self):
        rng = np.random.default_rng(20261202)
        for _ in range(200):
            sq, sk = rng.integers(1, 9, size=2)
            causal = bool(rng.integers(0, 2))
            C = int(rng.choice([1, 2]) if causal else rng.choice([2, 4]))
            se = rng.integers(0, sq + 1, size=(1, 2, sk, C)).astype(np.int32)
            if C == 4 or (causal and C == 2):  # start <= end
                se[..., 0], se[..., 1] = (np.minimum(se[..., 0], se[..., 1]),
                                          np.maximum(se[..., 0], se[..., 1]))
            if C == 4:
                se[..., 2], se[..., 3] = (np.minimum(se[..., 2], se[..., 3]),
                                          np.maximum(se[..., 2], se[..., 3]))
            ours = fm.Mask.from_startend(se, sq, "bottom_right" if causal else "none")
            np.testing.assert_array_equal(ours.to_dense(), paddle_allowed(se, sq, causal),
                                          err_msg=f"Sq={sq} Sk={sk} C={C} causal={causal}")


class TestPaddleTraps(unittest.TestCase):

    def test_document_quirk_rows_see_other_documents(self):
        se = gen_document_quirk([2, 1, 1], 4)
        np.testing.assert_array_equal(se[0, 0, :, 1], [0, 0, 1, 2])  # the numbers
        allowed = paddle_allowed(se, 4, causal=False)[0, 0]
        self.assertTrue(allowed[1, 2], "row 1 (document 0) sees key 2 (document 1)")
        ours = fm.build("document", 1, 1, 4, doc_lens=[2, 1, 1]).to_dense()[0, 0]
        self.assertFalse(np.array_equal(allowed, ours))
        # the conversion: UTE = the start of the key's document
        fixed = gen_document([2, 1, 1], 4, 4)
        np.testing.assert_array_equal(fixed[0, 0, :, 1], [0, 0, 2, 3])
        np.testing.assert_array_equal(fm.Mask.from_startend(fixed, 4, "none").to_dense()[0, 0],
                                      ours)

    def test_causal_generators_are_not_shifted(self):
        lens, sq, sk = [4, 3, 3], 4, 10
        se = gen_causal_document(lens, sq, sk)
        paddle = paddle_allowed(se, sq, causal=True)
        ours = fm.build("causal_document", 1, 1, sq, sk, alignment="bottom_right",
                        doc_lens=lens).to_dense()
        self.assertFalse(np.array_equal(paddle, ours))
        # rows are positions 6..9: Paddle's vectors let row 0 (position 6) see document 0
        self.assertTrue(paddle[0, 0, 0, 0])
        self.assertFalse(ours[0, 0, 0, 0])
        # the conversion: subtract Sk - Sq from the bounds (key positions -> query rows), clip
        shifted = np.clip(gen_causal_document(lens, sk, sk) - (sk - sq), 0, sq)
        np.testing.assert_array_equal(fm.Mask.from_startend(shifted, sq, "bottom_right")
                                      .to_dense(), ours)
        # Sq == Sk: nothing to shift, Paddle's vectors are ours
        se = gen_causal_document(lens, sk, sk)
        np.testing.assert_array_equal(
            fm.Mask.from_startend(se, sk, "bottom_right").to_dense(),
            fm.build("causal_document", 1, 1, sk, doc_lens=lens).to_dense())

    def test_noncausal_generators_end_documents_at_sk(self):
        lens, sq, sk = [2, 2], 6, 4
        paddle = paddle_allowed(gen_document(lens, sq, sk), sq, causal=False)[0, 0]
        self.assertFalse(paddle[4:].any(), "rows >= Sk are fully masked in Paddle's vectors")
        ours = fm.build("document", 1, 1, sq, sk, doc_lens=lens).to_dense()[0, 0]
        self.assertTrue(ours[4:, 2:].all(), "ours: the last document runs to Sq")
        np.testing.assert_array_equal(paddle[:4], ours[:4])

    def test_generate_causal_mask_refused_then_clipped(self):
        sq, sk = 4, 6
        se = gen_causal(sk)
        with self.assertRaises(fm.InvalidInput) as cm:
            fm.Mask.from_startend(se, sq, "bottom_right")
        self.assertIn("LTS", str(cm.exception))
        self.assertIn("Sq=4", str(cm.exception))
        clipped = np.minimum(se, sq)  # the conversion: rows >= Sq do not exist
        np.testing.assert_array_equal(fm.Mask.from_startend(clipped, sq, "bottom_right")
                                      .to_dense(), paddle_allowed(se, sq, causal=True))
        np.testing.assert_array_equal(fm.Mask.from_startend(clipped, sq, "bottom_right")
                                      .to_dense(), fm.build("causal", 1, 1, sq, sk).to_dense())

    def test_window_conventions(self):
        s = 12
        for w in range(1, s + 2):
            attn = flashmask_window_size(w, s)
            gen = gen_sliding_window(w, s, s)
            np.testing.assert_array_equal(
                paddle_allowed(attn, s, True),
                fm.build("sliding_window", 1, 1, s, window=w + 1).to_dense(),
                err_msg=f"flashmask_attention(window_size={w}) is window={w + 1}")
            np.testing.assert_array_equal(
                paddle_allowed(gen, s, True),
                fm.build("sliding_window", 1, 1, s, window=w).to_dense(),
                err_msg=f"generate_sliding_window_mask({w}) is window={w}")


class TestToStartendRefuses(unittest.TestCase):
    """to_startend refuses what Paddle would read as another mask or reject."""

    def test_top_left_with_sq_ne_sk(self):
        m = fm.build("causal_document", 1, 1, 4, 10, alignment="top_left", doc_lens=[4, 3, 3])
        for C in (1, 2):
            with self.assertRaises(fm.InvalidInput) as cm:
                m.to_startend(C)
            msg = str(cm.exception)
            self.assertIn("top_left", msg)
            self.assertIn("bottom-right", msg)
        # what the message says to do: convert to causal none, then C = 2 or 4
        none = fm.Mask.from_dense(m.to_dense(), "none")
        se = none.to_startend(4)
        np.testing.assert_array_equal(paddle_allowed(se, 4, causal=False), m.to_dense())

    def test_top_left_with_sq_eq_sk_is_fine(self):
        m = fm.build("causal_document", 1, 1, 10, 10, alignment="top_left", doc_lens=[4, 3, 3])
        se = m.to_startend(1)
        np.testing.assert_array_equal(paddle_allowed(se, 10, causal=True), m.to_dense())

    def test_causal_four_columns(self):
        m = fm.build("causal_document", 1, 1, 10, doc_lens=[4, 3, 3])
        with self.assertRaises(fm.InvalidInput) as cm:
            m.to_startend(4)
        self.assertIn("C=4", str(cm.exception))
        self.assertIn("raises", str(cm.exception))
        se = m.to_startend(1)  # the causal forms
        np.testing.assert_array_equal(paddle_allowed(se, 10, causal=True), m.to_dense())

    def test_bottom_right_with_sq_ne_sk_means_the_same(self):
        for sq, sk in ((4, 10), (10, 4), (7, 7)):
            m = fm.build("causal_document", 1, 1, sq, sk, doc_lens=[4, 3, 3]
                         if sk == 10 else [2, 1, 1] if sk == 4 else [3, 2, 2])
            se = m.to_startend(1)
            np.testing.assert_array_equal(paddle_allowed(se, sq, causal=True), m.to_dense())


if __name__ == "__main__":
    unittest.main()
