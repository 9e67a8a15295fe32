"""tests/python/test_flashmask.py — property tests of the Python binding (python/flashmask) with
Hypothesis: the dense round trip and the element rule against an independent NumPy reading of
docs/spec.md §2, the reference forward/backward against a NumPy float64 attention, Paddle's startend
form, the cpu layer and the naive computation through the check, the check passing the reference
and catching perturbations and planted bugs, case and result files round-tripping, and errors
raised as Python exceptions carrying the library's message.

Run: FLASHMASK_LIB=build/libflashmask.so PYTHONPATH=python /usr/bin/python3 -m unittest -v
tests/python/test_flashmask.py  (meson test --suite python does this).
Layer: tests of python/ (over the whole library).
"""

import os
import tempfile
import unittest

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import flashmask as fm

EXAMPLES = int(os.environ.get("FM_TRIALS", "40"))
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
                    suppress_health_check=list(HealthCheck))

CAUSALS = ["none", "bottom_right", "top_left"]


# ------------------------------------------------------------------ independent NumPy model

def dense_numpy(bounds, sq, causal):
    """docs/spec.md §2 read independently: row i masked from key j iff LTS<=i<LTE or UTS<=i<UTE or
    causal(i, j). Returns allowed [B, Hm, Sq, Sk]."""
    B, Hm, Sk, _ = bounds.shape
    i = np.arange(sq)[:, None]
    j = np.arange(Sk)[None, :]
    lts, lte = bounds[..., 0][:, :, None, :], bounds[..., 1][:, :, None, :]
    uts, ute = bounds[..., 2][:, :, None, :], bounds[..., 3][:, :, None, :]
    masked = ((lts <= i) & (i < lte)) | ((uts <= i) & (i < ute))
    if causal != "none":
        off = Sk - sq if causal == "bottom_right" else 0
        masked = masked | (j > i + off)
    return ~masked


def attention_numpy(q, k, v, dout, allowed, scale):
    """Float64 attention and its gradient with a dense mask (docs/spec.md §1), GQA and mask heads by
    repetition; fully masked rows give out 0, lse -inf, no gradient."""
    B, Hq, Sq, D = q.shape
    Hk, Hm = k.shape[1], allowed.shape[1]
    kk = np.repeat(k, Hq // Hk, axis=1)
    vv = np.repeat(v, Hq // Hk, axis=1)
    am = np.repeat(allowed, Hq // Hm, axis=1)
    s = scale * np.einsum("bhid,bhjd->bhij", q, kk)
    s = np.where(am, s, -np.inf)
    mx = s.max(axis=-1, keepdims=True)
    live = np.isfinite(mx)
    mx = np.where(live, mx, 0.0)
    e = np.where(am, np.exp(s - mx), 0.0)
    tot = e.sum(axis=-1, keepdims=True)
    p = np.where(live, e / np.where(live, tot, 1.0), 0.0)
    lse = np.where(live[..., 0], (mx + np.log(np.where(live, tot, 1.0)))[..., 0], -np.inf)
    out = np.einsum("bhij,bhjd->bhid", p, vv)
    delta = (dout * out).sum(-1, keepdims=True)
    dp = np.einsum("bhid,bhjd->bhij", dout, vv)
    ds = p * (dp - delta)
    dq = scale * np.einsum("bhij,bhjd->bhid", ds, kk)
    dk = scale * np.einsum("bhij,bhid->bhjd", ds, q)
    dv = np.einsum("bhij,bhid->bhjd", p, dout)
    dk = dk.reshape(B, Hk, Hq // Hk, -1, D).sum(2)
    dv = dv.reshape(B, Hk, Hq // Hk, -1, D).sum(2)
    return {"out": out, "lse": lse, "dq": dq, "dk": dk, "dv": dv}


# ------------------------------------------------------------------ strategies

@st.composite
def masks(draw, max_seq=12):
    B = draw(st.integers(1, 2))
    Hm = draw(st.sampled_from([1, 2]))
    sq = draw(st.integers(1, max_seq))
    sk = draw(st.integers(1, max_seq))
    causal = draw(st.sampled_from(CAUSALS))
    bounds = np.zeros((B, Hm, sk, 4), dtype=np.int32)
    for idx in np.ndindex(B, Hm, sk):
        a, b = sorted(draw(st.tuples(st.integers(0, sq), st.integers(0, sq))))
        c, d = sorted(draw(st.tuples(st.integers(0, sq), st.integers(0, sq))))
        bounds[idx] = (a, b, c, d)
    return fm.Mask(bounds, sq, causal)


@st.composite
def problems(draw, max_seq=12):
    m = draw(masks(max_seq))
    hk = draw(st.sampled_from([1, 2]))
    group = draw(st.sampled_from([1, 2]))
    hq = hk * group
    if hq % m.heads:
        hq = hk * m.heads  # keep Hm | Hq
    D = draw(st.integers(1, 8))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    q = rng.standard_normal((m.batch, hq, m.seqlen_q, D))
    k = rng.standard_normal((m.batch, hk, m.seqlen_k, D))
    v = rng.standard_normal((m.batch, hk, m.seqlen_k, D))
    dout = rng.standard_normal(q.shape)
    scale = draw(st.sampled_from([None, 0.3, 1.7]))
    return q, k, v, dout, m, scale


def rounded(arrays, dtype):
    return [fm.round_to(a, dtype) for a in arrays]


def normal_inputs(seed, shape_q, shape_kv, dtype):
    """q, k, v, dout standard normal from `seed` (drawn in that order), rounded to dtype."""
    rng = np.random.default_rng(seed)
    return rounded([rng.standard_normal(shape_q), rng.standard_normal(shape_kv),
                    rng.standard_normal(shape_kv), rng.standard_normal(shape_q)], dtype)


def causal_case(seed, dtype):
    """normal_inputs for B = 1, H = 2, Sq = 24, Sk = 40, D = 16, and a bottom-right causal
    mask."""
    q, k, v, dout = normal_inputs(seed, (1, 2, 24, 16), (1, 2, 40, 16), dtype)
    return q, k, v, dout, fm.build("causal", 1, 1, 24, 40, alignment="bottom_right")


class MaskTests(unittest.TestCase):
    @SETTINGS
    @given(masks())
    def test_dense_matches_rule_and_round_trips(self, m):
        dense = m.to_dense()
        np.testing.assert_array_equal(dense, dense_numpy(m.bounds, m.seqlen_q, m.causal))
        self.assertEqual(m.allowed_pairs(), int(dense.sum()))
        back = fm.Mask.from_dense(dense, m.causal)
        np.testing.assert_array_equal(back.to_dense(), dense)

    @SETTINGS
    @given(masks(), st.integers(1, 5), st.integers(1, 5))
    def test_tile_classes_sound(self, m, bq, bk):
        dense = m.to_dense()
        classes = m.tile_classes(bq, bk)
        for b, h, qb, kb in np.ndindex(*classes.shape):
            tile = dense[b, h, qb * bq:(qb + 1) * bq, kb * bk:(kb + 1) * bk]
            if classes[b, h, qb, kb] == 2:
                self.assertFalse(tile.any(), "a tile called masked has an allowed element")
            if classes[b, h, qb, kb] == 0:
                self.assertTrue(tile.all(), "a tile called unmasked has a masked element")
        stats = m.tile_stats(bq, bk)
        self.assertEqual(stats["total"], classes.size)
        self.assertEqual(stats["masked"], int((classes == 2).sum()))

    @SETTINGS
    @given(st.integers(2, 40), st.data())
    def test_startend_causal_document(self, n, data):
        cuts = sorted(data.draw(st.sets(st.integers(1, n - 1), max_size=4)))
        lens = np.diff([0] + cuts + [n])
        m = fm.build("causal_document", 1, 1, n, doc_lens=list(lens))
        se = m.to_startend(1)
        back = fm.Mask.from_startend(se, n, "bottom_right")
        np.testing.assert_array_equal(back.to_dense(), m.to_dense())

    @SETTINGS
    @given(masks())
    def test_startend_four_columns_round_trip(self, m):
        if m.causal != "none":  # Paddle has no causal C = 4 form: refused (tests/python/test_paddle)
            with self.assertRaises(fm.InvalidInput):
                m.to_startend(4)
            return
        se = m.to_startend(4)
        np.testing.assert_array_equal(se, m.bounds)  # C = 4 is the native layout
        back = fm.Mask.from_startend(se, m.seqlen_q, m.causal)
        np.testing.assert_array_equal(back.to_dense(), m.to_dense())

    def test_every_family_builds(self):
        for f in fm.FAMILIES:
            m = fm.build(f, batch=2, heads=2, seqlen_q=33, seqlen_k=33)
            self.assertEqual(m.bounds.shape, (2, 2, 33, 4))
            self.assertTrue(fm.family_help(f))

    def test_invalid_bounds_raise_with_message(self):
        bad = np.array([[[[3, 2, 0, 0]]]], dtype=np.int32)  # start > end
        with self.assertRaises(fm.InvalidInput) as ctx:
            fm.Mask(bad, 4)
        self.assertIn("3", str(ctx.exception))
        with self.assertRaises(fm.InvalidInput):
            fm.Mask(np.array([[[[0, 9, 0, 0]]]], dtype=np.int32), 4)  # LTE > Sq
        with self.assertRaises(fm.InvalidInput):
            fm.build("no_such_family", seqlen_q=4)
        three_runs = np.ones((1, 1, 5, 1), dtype=bool)
        three_runs[0, 0, [0, 2, 4], 0] = False
        with self.assertRaises(fm.InvalidInput) as ctx:
            fm.Mask.from_dense(three_runs)
        self.assertEqual(ctx.exception.status_name, "not representable")


class AttentionTests(unittest.TestCase):
    @SETTINGS
    @given(problems())
    def test_reference_matches_numpy(self, prob):
        q, k, v, dout, m, scale = prob
        s = scale if scale is not None else 1.0 / np.sqrt(q.shape[-1])
        got = fm.reference(q, k, v, dout, m, scale)
        want = attention_numpy(q, k, v, dout, m.to_dense(), s)
        for t in ("out", "dq", "dk", "dv"):
            np.testing.assert_allclose(got[t], want[t], rtol=1e-9, atol=1e-11, err_msg=t)
        np.testing.assert_array_equal(np.isinf(got["lse"]), np.isinf(want["lse"]))
        live = np.isfinite(want["lse"])
        np.testing.assert_allclose(got["lse"][live], want["lse"][live], rtol=1e-12, atol=1e-12)

    @SETTINGS
    @given(problems(max_seq=20))
    def test_cpu_layer_passes_float16_rule(self, prob):
        q, k, v, dout, m, scale = prob
        q, k, v, dout = rounded([q, k, v, dout], "float16")
        out, lse = fm.forward(q, k, v, m, scale, impl="cpu")
        dq, dk, dv = fm.backward(q, k, v, out, lse, dout, m, scale, impl="cpu")
        # as a float16 kernel would store them
        cand = {n: fm.round_to(x, "float16") for n, x in
                dict(out=out, lse=lse, dq=dq, dk=dk, dv=dv).items()}
        rep = fm.check_arrays(q, k, v, dout, m, cand, "float16", scale)
        self.assertTrue(rep.passed, rep.table())

    @SETTINGS
    @given(problems())
    def test_reference_cuda_equals_reference_or_is_unavailable(self, prob):
        # the float64 oracle on the GPU (impl 'reference-cuda'): the reference's function to
        # 1e-12 of each tensor's largest value where a GPU is present, Unavailable elsewhere
        q, k, v, dout, m, scale = prob
        if not fm.available("reference-cuda"):
            with self.assertRaises(fm.Unavailable):
                fm.reference(q, k, v, dout, m, scale, impl="reference-cuda")
            return
        got = fm.reference(q, k, v, dout, m, scale, impl="reference-cuda")
        want = fm.reference(q, k, v, dout, m, scale)
        # relative to the tensor's largest value, or to one term of its sums where the whole
        # tensor is cancellation noise (one key per row: dq = dk = 0 up to rounding), as
        # tests/cuda/test_cuda_reference.c defines it
        s = scale if scale is not None else 1.0 / np.sqrt(q.shape[-1])
        mx = {n: np.max(np.abs(x)) for n, x in dict(q=q, k=k, v=v, do=dout).items()}
        term = {"out": mx["v"], "lse": 1.0, "dv": mx["do"],
                "dq": s * mx["k"] * mx["do"] * mx["v"], "dk": s * mx["q"] * mx["do"] * mx["v"]}
        for t in ("out", "lse", "dq", "dk", "dv"):
            live = np.isfinite(want[t])
            np.testing.assert_array_equal(got[t][~live], want[t][~live], err_msg=t)
            err = np.max(np.abs(got[t][live] - want[t][live]), initial=0.0)
            ref = max(np.max(np.abs(want[t][live]), initial=0.0), term[t], 1e-300)
            self.assertLessEqual(err, 1e-12 * ref, t)

    def test_reference_impl_names_are_checked(self):
        q = np.zeros((1, 1, 4, 2))
        m = fm.build("causal", seqlen_q=4)
        with self.assertRaises(fm.InvalidInput):
            fm.reference(q, q, q, q, m, impl="cpu")

    def test_kernel_option_is_checked(self):
        # kernel= is read by the library; a spec naming CUDA kernels is refused for the cpu
        # layer, a malformed one for any implementation, and "auto" is accepted everywhere.
        m = fm.build("causal", seqlen_q=8)
        x = np.random.default_rng(1).standard_normal((1, 1, 8, 16))
        out, lse = fm.forward(x, x, x, m, impl="cpu", kernel="auto")
        self.assertEqual(out.shape, x.shape)
        with self.assertRaises(fm.InvalidInput) as ctx:
            fm.forward(x, x, x, m, impl="cpu", kernel="wgmma")
        self.assertIn("CUDA kernels", str(ctx.exception))
        with self.assertRaises(fm.InvalidInput) as ctx:
            fm.forward(x, x, x, m, impl="reference", kernel="fwd=fast")
        self.assertIn("fwd=fast", str(ctx.exception))

    def test_round_to_matches_numpy(self):
        x = np.random.default_rng(0).standard_normal(10000) * 100
        np.testing.assert_array_equal(fm.round_to(x, "float16"),
                                      x.astype(np.float16).astype(np.float64))
        np.testing.assert_array_equal(fm.round_to(x, "float32"),
                                      x.astype(np.float32).astype(np.float64))
        bf = fm.round_to(x, "bfloat16")
        self.assertTrue(np.all(np.abs(bf - x) <= np.abs(x) * 2.0 ** -8))


class CheckTests(unittest.TestCase):
    @SETTINGS
    @given(problems(), st.sampled_from(["float16", "bfloat16", "float32"]))
    def test_reference_and_naive_pass(self, prob, dtype):
        q, k, v, dout, m, scale = prob
        q, k, v, dout = rounded([q, k, v, dout], dtype)
        ref = fm.reference(q, k, v, dout, m, scale)
        self.assertTrue(fm.check_arrays(q, k, v, dout, m, ref, dtype, scale).passed)
        nv = fm.naive(q, k, v, dout, m, dtype, scale)
        self.assertTrue(fm.check_arrays(q, k, v, dout, m, nv, dtype, scale, ref).passed)

    @SETTINGS
    @given(problems(), st.sampled_from(["float16", "bfloat16", "float32"]),
           st.sampled_from(["out", "lse", "dq", "dk", "dv"]), st.data())
    def test_perturbation_past_bound_fails(self, prob, dtype, tensor, data):
        q, k, v, dout, m, scale = prob
        q, k, v, dout = rounded([q, k, v, dout], dtype)
        ref = fm.reference(q, k, v, dout, m, scale)
        live = np.flatnonzero(np.isfinite(ref[tensor]).ravel())
        if tensor == "out":
            rows_live = np.isfinite(ref["lse"]).ravel()
            live = [i for i in live if rows_live[i // q.shape[-1]]]
        if len(live) == 0:
            return
        # the FA rule's per-tensor bound (the derived rule's bounds are per element)
        bound = fm.check_arrays(q, k, v, dout, m, ref, dtype, scale,
                                rule="fa").tensors[tensor]["bound"]
        cand = {t: a.copy() for t, a in ref.items()}
        where = live[data.draw(st.integers(0, len(live) - 1))]
        sign = data.draw(st.sampled_from([-1.0, 1.0]))
        old = cand[tensor].ravel()[where]
        moved = old + sign * 1.5 * bound
        if moved == old:  # a degenerate bound of 0 (values that round-trip exactly)
            moved = np.nextafter(old, sign * np.inf)
        cand[tensor].ravel()[where] = moved
        rep = fm.check_arrays(q, k, v, dout, m, cand, dtype, scale, ref, rule="fa")
        self.assertFalse(rep.passed)
        self.assertFalse(rep.tensors[tensor]["passed"])
        cand[tensor].ravel()[where] = np.nan
        rep = fm.check_arrays(q, k, v, dout, m, cand, dtype, scale, ref)
        self.assertEqual(rep.tensors[tensor]["nan_count"], 1)

    def test_dropped_max_shift_and_off_by_one_caught(self):
        """Two planted bugs a kernel author makes: the wrong causal offset (top-left where the
        case is bottom-right) and forgetting the 1/sqrt(D) scale."""
        q, k, v, dout, m = causal_case(7, "bfloat16")
        wrong = fm.build("causal", 1, 1, 24, 40, alignment="top_left")
        bad = fm.reference(q, k, v, dout, wrong)
        self.assertFalse(fm.check_arrays(q, k, v, dout, m, bad, "bfloat16").passed)
        unscaled = fm.reference(q, k, v, dout, m, scale=1.0)
        self.assertFalse(fm.check_arrays(q, k, v, dout, m, unscaled, "bfloat16").passed)

    def test_naive_left_out_unless_asked(self):
        """The derived rule leaves the naive computation out where the inputs cannot overflow
        X (naive_max_abs None, "-" in the table) with the same verdict and bounds; naive=True
        and the FA rule compute it; inputs whose float16 dS overflows are still refused."""
        q, k, v, dout, m = causal_case(5, "bfloat16")
        ref = fm.reference(q, k, v, dout, m)
        cand = {t: a.copy() for t, a in ref.items()}
        cand["dk"].ravel()[3] += 1.0
        skip = fm.check_arrays(q, k, v, dout, m, cand, "bfloat16")
        full = fm.check_arrays(q, k, v, dout, m, cand, "bfloat16", naive=True)
        fa = fm.check_arrays(q, k, v, dout, m, cand, "bfloat16", rule="fa")
        self.assertFalse(skip.passed)
        self.assertEqual(skip.passed, full.passed)
        for name, t in skip.tensors.items():
            self.assertIsNone(t["naive_max_abs"])
            self.assertFalse(t["naive_computed"])
            self.assertTrue(full.tensors[name]["naive_computed"])
            self.assertTrue(fa.tensors[name]["naive_computed"])
            for key in ("passed", "bound", "ratio", "why"):
                self.assertEqual(t[key], full.tensors[name][key])
        self.assertIn("naive_err -: not computed", skip.table())
        self.assertNotIn("not computed", full.table())
        big = [fm.round_to(np.clip(3000.0 * x, -65504, 65504), "float16") for x in (v, dout)]
        q16, k16 = (fm.round_to(x, "float16") for x in (q, k))
        ref16 = fm.reference(q16, k16, big[0], big[1], m)
        with self.assertRaises(fm.FlashMaskError) as e:
            fm.check_arrays(q16, k16, big[0], big[1], m, ref16, "float16")
        self.assertIn("naive float16 computation gives", str(e.exception))

    def test_rules(self):
        """Both rules are selectable and reported; bugs fail both; a bad rule is an error; the
        derived rule passes the cancelling 1x1 float16 gradient the FA rule may not."""
        q, k, v, dout, m = causal_case(11, "float16")
        ref = fm.reference(q, k, v, dout, m)
        for rule in ("derived", "fa"):
            rep = fm.check_arrays(q, k, v, dout, m, ref, "float16", rule=rule)
            self.assertTrue(rep.passed)
            self.assertEqual(rep.rule, rule)
            self.assertLessEqual(max(t["ratio"] for t in rep.tensors.values()), 1.0)
            bad = fm.reference(q, k, v, dout, m, scale=1.0)
            self.assertFalse(fm.check_arrays(q, k, v, dout, m, bad, "float16", rule=rule).passed)
        with self.assertRaises(fm.InvalidInput):
            fm.check_arrays(q, k, v, dout, m, ref, "float16", rule="loose")
        # ideal16 on 1x1 problems: Delta from O rounded to float16; the exact dq, dk are 0
        for seed in range(20):
            r = np.random.default_rng(seed)
            q1, k1, v1, d1 = rounded([r.standard_normal((1, 1, 1, 64)) for _ in range(4)],
                                     "float16")
            m1 = fm.build("full", 1, 1, 1, 1)
            ref1 = fm.reference(q1, k1, v1, d1, m1)
            o16 = fm.round_to(ref1["out"], "float16")
            dq, dk, dv = fm.backward(q1, k1, v1, o16, ref1["lse"], d1, m1, impl="reference")
            cand = {"out": o16, "lse": ref1["lse"], "dq": fm.round_to(dq, "float16"),
                    "dk": fm.round_to(dk, "float16"), "dv": fm.round_to(dv, "float16")}
            self.assertTrue(fm.check_arrays(q1, k1, v1, d1, m1, cand, "float16").passed)

    def test_oracle_option(self):
        """check_arrays(oracle=...): the reference computed on the GPU judges as the CPU one
        (a correct candidate passes, a wrong scale fails) where the GPU oracle runs, raises
        Unavailable elsewhere; an unknown oracle is an error."""
        rng = np.random.default_rng(5)
        q, k, v, dout = rounded([rng.standard_normal((1, 2, 33, 16)) for _ in range(4)],
                                "bfloat16")
        m = fm.build("causal_document", 1, 1, 33, 33, doc_lens=[20, 13])
        good = {n: fm.round_to(x, "bfloat16") for n, x in fm.reference(q, k, v, dout, m).items()}
        good["lse"] = fm.reference(q, k, v, dout, m)["lse"]
        bad = fm.reference(q, k, v, dout, m, scale=1.0)
        with self.assertRaises(fm.InvalidInput):
            fm.check_arrays(q, k, v, dout, m, good, "bfloat16", oracle="gpu")
        self.assertTrue(fm.check_arrays(q, k, v, dout, m, good, "bfloat16").passed)
        if not fm.available("reference-cuda"):
            with self.assertRaises(fm.Unavailable):
                fm.check_arrays(q, k, v, dout, m, good, "bfloat16", oracle="reference-cuda")
            return
        for cand, want in ((good, True), (bad, False)):
            rep = fm.check_arrays(q, k, v, dout, m, cand, "bfloat16", oracle="reference-cuda")
            self.assertEqual(rep.passed, want, rep.table())

    def test_fa2_inf_lse_option(self):
        q, k, v, dout = normal_inputs(3, (1, 1, 8, 4), (1, 1, 4, 4), "float16")
        m = fm.build("causal", 1, 1, 8, 4, alignment="bottom_right")  # rows 0..3 fully masked
        ref = fm.reference(q, k, v, dout, m)
        cand = {t: a.copy() for t, a in ref.items()}
        cand["lse"][np.isinf(cand["lse"])] = np.inf
        self.assertFalse(fm.check_arrays(q, k, v, dout, m, cand, "float16").passed)
        self.assertTrue(fm.check_arrays(q, k, v, dout, m, cand, "float16",
                                        allow_fa2_inf_lse=True).passed)
        fwd = {"out": cand["out"], "lse": ref["lse"]}
        self.assertTrue(fm.check_arrays(q, k, v, None, m, fwd, "float16",
                                        forward_only=True).passed)

    def test_case_files_round_trip_and_check_dirs(self):
        q, k, v, dout = normal_inputs(11, (2, 4, 13, 8), (2, 2, 17, 8), "bfloat16")
        m = fm.build("sliding_window", 2, 2, 13, 17, alignment="top_left", window=5)
        ref = fm.reference(q, k, v, dout, m)
        with tempfile.TemporaryDirectory() as tmp:
            case_dir, cand_dir = os.path.join(tmp, "case"), os.path.join(tmp, "cand")
            fm.save_case(case_dir, q, k, v, dout, m, "bfloat16", expected=ref,
                         mask_kind="sliding_window", mask_params={"window": 5})
            c = fm.load_case(case_dir)
            self.assertEqual(c.problem["dtype"], "bfloat16")
            self.assertEqual(c.mask.causal, "top_left")
            np.testing.assert_array_equal(c.q, q)
            np.testing.assert_array_equal(c.mask.bounds, m.bounds)
            np.testing.assert_array_equal(c.lse, ref["lse"])
            naive = fm.naive(q, k, v, dout, m, "bfloat16")
            fm.save_results(cand_dir, c, **naive)
            self.assertTrue(fm.check_dirs(case_dir, cand_dir).passed)
            self.assertFalse(fm.check_dirs(case_dir, cand_dir, dtype="float32").passed)
            with self.assertRaises(fm.FileError):
                fm.check_dirs(case_dir, os.path.join(tmp, "missing"))
            # a one-case suite: check_suite reports per case, errors included
            with open(os.path.join(tmp, "manifest.json"), "w") as f:
                f.write('{"format": "flashmask-suite", "version": 1, "cases": '
                        '[{"name": "case"}]}')
            self.assertTrue(fm.check_suite(tmp, tmp)["case"].passed)
            os.rename(os.path.join(tmp, "cand"), os.path.join(tmp, "cands"))
            # a case that could not be judged is a falsy CaseError holding the exception
            res = fm.check_suite(tmp, os.path.join(tmp, "cands"))
            self.assertFalse(res["case"])
            self.assertFalse(all(res.values()))
            self.assertIsInstance(res["case"].error, fm.FileError)
            with self.assertRaises(fm.FlashMaskError):
                fm.load_case(os.path.join(tmp, "missing"))


if __name__ == "__main__":
    unittest.main()
