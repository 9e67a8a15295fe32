"""flashmask.testing — the oracle as a test-suite building block for kernel authors.

    import flashmask.testing as fmt
    case = fmt.make_case("causal_document", seqlen=256, head_dim=64, dtype="bfloat16", seed=3)
    fmt.assert_passes(my_kernel, case)            # AssertionError with the oracle's table

    # pytest (plugin registered by `pip install .`; in a checkout: pytest -p flashmask.testing)
    @pytest.mark.flashmask(families=["causal", "sliding_window"], dtypes=["bfloat16"],
                           seeds=[0, 1], seqlen=128, head_dim=64)
    def test_my_kernel(flashmask_case, flashmask_judge):
        flashmask_judge(my_kernel, flashmask_case)

A candidate is a callable `candidate(q, k, v, dout, mask)` taking the case's inputs (NumPy
float64 arrays [B, H, S, D] holding values exact in the case's dtype, or whatever `to=` turns
them into: torch tensors on a GPU, say) and the flashmask.Mask, and returning out, lse (forward
only) or out, lse, dq, dk, dv, as a tuple or a dict, of any tensor kind flashmask.tensors reads
(in `layout`). The verdict is the pass rule of docs/spec.md §5 (flashmask.check_arrays).
Cases are generated in-process (no files): the mask from the family's documented defaults,
inputs standard normal from `seed` rounded to the dtype. Layer: python, over tensors.py,
check.py, mask.py and attention.py.
"""

from dataclasses import dataclass, field

import numpy as np

from . import tensors
from .attention import round_to
from .mask import FAMILIES, Mask, build


@dataclass
class Case:
    """One generated problem: inputs q, k, v, dout (float64 NumPy [B, H, S, D], exact in
    `dtype`), its mask and how it was made (name says it all, for a failure message)."""
    name: str
    family: str
    dtype: str
    seed: int
    mask: Mask
    q: np.ndarray
    k: np.ndarray
    v: np.ndarray
    dout: np.ndarray
    params: dict = field(default_factory=dict)

    def __repr__(self):
        return f"Case({self.name})"


def make_case(family="causal", *, batch=1, heads=2, kv_heads=None, mask_heads=1, seqlen=128,
              seqlen_k=None, head_dim=64, dtype="bfloat16", seed=0, alignment="bottom_right",
              **params):
    """A Case of `family` (mask parameters: the family's defaults, overridden by params)."""
    Sk = seqlen_k or seqlen
    Hk = kv_heads or heads
    mask = build(family, batch=batch, heads=mask_heads, seqlen_q=seqlen, seqlen_k=Sk,
                 alignment=alignment, **params)
    rng = np.random.default_rng(seed)
    q = round_to(rng.standard_normal((batch, heads, seqlen, head_dim)), dtype)
    k = round_to(rng.standard_normal((batch, Hk, Sk, head_dim)), dtype)
    v = round_to(rng.standard_normal((batch, Hk, Sk, head_dim)), dtype)
    dout = round_to(rng.standard_normal((batch, heads, seqlen, head_dim)), dtype)
    shape = f"B{batch}-H{heads}" + (f"-Hk{Hk}" if Hk != heads else "") + \
        f"-S{seqlen}" + (f"-Sk{Sk}" if Sk != seqlen else "") + f"-D{head_dim}"
    name = f"{family}-{dtype}-{shape}-seed{seed}"
    return Case(name, family, dtype, seed, mask, q, k, v, dout, dict(params))


def cases(families=None, dtypes=("bfloat16",), seeds=(0,), **shape):
    """make_case for every family x dtype x seed (families None: all twelve)."""
    for family in families or FAMILIES:
        for dtype in dtypes:
            for seed in seeds:
                yield make_case(family, dtype=dtype, seed=seed, **shape)


_NAMES = ("out", "lse", "dq", "dk", "dv")


def judge(candidate, case, *, layout="bhsd", to=None, forward_only=None, scale=None,
          allow_fa2_inf_lse=False, oracle=None):
    """Runs candidate on the case and returns the oracle's flashmask.Report. `to` converts each
    input array before the call (e.g. lambda a: torch.tensor(a, dtype=torch.bfloat16,
    device="cuda")); `layout` is the candidate's ('bshd': the inputs are handed over
    transposed). forward_only None: decided by how many results come back (2 or 5). oracle:
    who computes the float64 reference (flashmask.tensors.check's; None: the GPU for CUDA
    tensors where it runs, else the CPU)."""
    if layout not in tensors.LAYOUTS:
        raise ValueError(f"layout {layout!r}; expected one of {tensors.LAYOUTS}")
    conv = to or (lambda a: a)

    def give(a):
        return conv(np.ascontiguousarray(np.swapaxes(a, 1, 2)) if layout == "bshd" else a)

    q, k, v, dout = (give(a) for a in (case.q, case.k, case.v, case.dout))
    res = candidate(q, k, v, dout, case.mask)
    if isinstance(res, dict):
        got = {n: res[n] for n in _NAMES if n in res and res[n] is not None}
    else:
        got = {n: x for n, x in zip(_NAMES, res) if x is not None}
    if forward_only is None:
        forward_only = not {"dq", "dk", "dv"} <= set(got)
    missing = [n for n in (_NAMES[:2] if forward_only else _NAMES) if n not in got]
    if missing:
        raise AssertionError(f"{case.name}: the candidate returned no {', '.join(missing)}")
    return tensors.check(q, k, v, None if forward_only else dout, case.mask, got, case.dtype,
                         layout=layout, scale=scale, allow_fa2_inf_lse=allow_fa2_inf_lse,
                         forward_only=forward_only, oracle=oracle)


def failure_message(case, report):
    """What a failing case says: which case (and how to rebuild it), then the oracle's table."""
    params = "".join(f", {k}={v!r}" for k, v in case.params.items())
    B, H, S, D = case.q.shape
    return (f"flashmask: candidate FAILED on {case.name}\n"
            f"  rebuild: flashmask.testing.make_case({case.family!r}, batch={B}, heads={H}, "
            f"kv_heads={case.k.shape[1]}, seqlen={S}, seqlen_k={case.k.shape[2]}, "
            f"head_dim={D}, dtype={case.dtype!r}, seed={case.seed}{params})\n"
            + "\n".join("  " + line for line in report.table().splitlines()))


def assert_passes(candidate, case, **judge_args):
    """judge(); raises AssertionError(failure_message) unless the candidate passed. Returns the
    report."""
    report = judge(candidate, case, **judge_args)
    if not report.passed:
        raise AssertionError(failure_message(case, report))
    return report


# ------------------------------------------------------------------ pytest plugin

def pytest_configure(config):
    config.addinivalue_line(
        "markers", "flashmask(families=None, dtypes=('bfloat16',), seeds=(0,), **shape): the "
        "cases the flashmask_case fixture runs a test on (flashmask.testing.cases)")


def pytest_generate_tests(metafunc):
    if "flashmask_case" not in metafunc.fixturenames:
        return
    marker = metafunc.definition.get_closest_marker("flashmask")
    kwargs = dict(marker.kwargs) if marker else {}
    defaults = {"seqlen": 128, "head_dim": 64}
    all_cases = list(cases(**{**defaults, **kwargs}))
    metafunc.parametrize("flashmask_case", all_cases, ids=[c.name for c in all_cases])


try:
    import pytest

    @pytest.fixture
    def flashmask_judge():
        """assert_passes(candidate, case, **judge_args)."""
        return assert_passes
except ImportError:  # pytest is optional: the functions above work without it
    pass


__all__ = ["Case", "make_case", "cases", "judge", "assert_passes", "failure_message"]
