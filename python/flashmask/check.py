"""flashmask.check — the oracle's verdict (docs/spec.md §5) from Python: on a case directory and a
candidate's result directory (fm_check_dirs), or on arrays in memory (fm_check_case). The rule is
the C library's (oracle/); this module only converts. rule="derived" (default: the per-element
bound of forward error analysis) or rule="fa" (FlashAttention's 2 * naive + atol rule); see
docs/oracle.md.

A Report has `passed`, `rule`, `tensors` (name -> dict of max_abs, mean_abs, rel_fro,
naive_max_abs, naive_computed, atol, bound, ratio, passed, why, nan_count, masked_bad),
`masked_rows` and a printable table. Under the derived rule the naive computation runs only
where the inputs could overflow X (it must then refuse) or with naive=True; elsewhere
naive_max_abs is None and naive_computed False (docs/oracle.md §2.5).
Layer: python, over oracle/ of libflashmask.
"""

import ctypes
import os

import numpy as np

from . import _lib
from ._lib import DTYPE_NAMES, DTYPES, lib
from .attention import problem_for


class Report:
    def __init__(self, rep, summary=""):
        self.passed = bool(rep.pass_)
        self.dtype = DTYPE_NAMES[rep.options.dtype]
        self.forward_only = bool(rep.options.forward_only)
        self.rule = RULES_BY_CODE.get(rep.options.rule, "unknown")
        self.masked_rows = rep.masked_rows
        self.summary = summary
        self.tensors = {}
        for i in range(rep.n_tensors):
            t = rep.tensor[i]
            self.tensors[t.name.decode()] = {
                "max_abs": t.max_abs, "mean_abs": t.mean_abs, "rel_fro": t.rel_fro,
                "naive_max_abs": t.naive_max_abs if t.naive_computed else None,
                "naive_computed": bool(t.naive_computed), "atol": t.atol, "bound": t.bound,
                "ratio": t.ratio,
                "passed": bool(t.pass_), "why": t.why.decode(), "nan_count": t.nan_count,
                "masked_bad": t.masked_bad, "compared": t.compared, "where": t.where}

    def __bool__(self):
        return self.passed

    def table(self):
        lines = [f"{'tensor':6} {'max_abs':>10} {'mean_abs':>10} {'rel_fro':>10} "
                 f"{'naive_err':>10} {'bound':>10} {'err/bound':>9}  verdict"]
        for name, t in self.tensors.items():
            naive = "-" if t["naive_max_abs"] is None else f"{t['naive_max_abs']:10.3e}"
            lines.append(f"{name:6} {t['max_abs']:10.3e} {t['mean_abs']:10.3e} "
                         f"{t['rel_fro']:10.3e} {naive:>10} {t['bound']:10.3e} "
                         f"{t['ratio']:9.3g}  "
                         f"{'pass' if t['passed'] else 'FAIL'}")
            if not t["passed"]:
                lines.append(f"  {name}: {t['why']}")
        if any(t["naive_max_abs"] is None for t in self.tensors.values()):
            lines.append("naive_err -: not computed (derived rule, no overflow possible in "
                         f"{self.dtype}; naive=True computes it)")
        lines.append(f"verdict: {'PASS' if self.passed else 'FAIL'}")
        return "\n".join(lines)

    def __repr__(self):
        return f"Report(passed={self.passed}, dtype={self.dtype!r})"


RULES = {"derived": 0, "fa": 1}  # fm_check_rule (oracle.h)
RULES_BY_CODE = {v: k for k, v in RULES.items()}


def _options(dtype, allow_fa2_inf_lse, forward_only, recompute=False, rule="derived",
             naive=False):
    code = 0 if dtype is None else DTYPES.get(dtype)
    if code is None or dtype == "float64":  # as the CLI's check: X is the candidate's precision
        raise _lib.InvalidInput(1, f"dtype {dtype!r}; expected float16, bfloat16 or float32",
                                "check")
    if rule not in RULES:
        raise _lib.InvalidInput(1, f"rule {rule!r}; expected 'derived' or 'fa'", "check")
    return _lib.CheckOptions(code, int(bool(allow_fa2_inf_lse)), int(bool(forward_only)),
                             int(bool(recompute)), RULES[rule], int(bool(naive)))


def _array_options(dtype, allow_fa2_inf_lse, forward_only, where, rule="derived", naive=False):
    """_options for judging arrays, where the candidate's precision must be named."""
    if dtype is None or dtype == "float64":
        raise _lib.InvalidInput(1, "dtype: say float16, bfloat16 or float32", where)
    return _options(dtype, allow_fa2_inf_lse, forward_only, rule=rule, naive=naive)


def _judged_tensors(p, q, k, v, dout, candidate, reference):
    """Checks every shape against problem p, then returns the reference bundle (inputs and
    `reference`'s outputs), the candidate's bundle, and `keep`: the float64 arrays the bundles
    point into, which must stay alive until the C call returns."""
    keep = []

    def c(a, name):
        if a is None:
            return None
        a = _lib.as_c(a, np.float64, name)
        keep.append(a)
        return _lib.dptr(a)

    ref = reference or {}
    outs = ("out", "lse", "dq", "dk", "dv")
    _lib.check_shapes(p, v=v, dout=dout, **{t: ref.get(t) for t in outs},
                      **{"candidate " + t: candidate.get(t) for t in outs})
    r = _lib.Tensors(q=c(q, "q"), k=c(k, "k"), v=c(v, "v"), dout=c(dout, "dout"),
                     **{t: c(ref.get(t), t) for t in outs})
    cand = _lib.Tensors(**{t: c(candidate.get(t), "candidate " + t) for t in outs})
    return r, cand, keep


def check_dirs(case_dir, candidate_dir, dtype=None, allow_fa2_inf_lse=False,
               forward_only=False, recompute=False, rule="derived", naive=False):
    """Judge candidate_dir's out/lse/dq/dk/dv.npy against case_dir. dtype None = the case's.
    recompute: judge against the reference recomputed from the case's inputs (done anyway
    for small cases and cases without a digest). naive: run the naive computation in X under
    the derived rule even where it cannot matter, to report naive_max_abs. Raises FileError /
    InvalidInput for missing files, wrong shapes or broken (or changed) cases."""
    opt = _options(dtype, allow_fa2_inf_lse, forward_only, recompute, rule, naive)
    rep = _lib.CheckReport()
    summary = ctypes.create_string_buffer(256)
    _lib.check(lib.fm_check_dirs(_lib.path_arg(case_dir, "case_dir"),
                                 _lib.path_arg(candidate_dir, "candidate_dir"),
                                 ctypes.byref(opt), ctypes.byref(rep), summary, 256),
               "check_dirs")
    return Report(rep, summary.value.decode())


class CaseError:
    """check_suite's entry for a case that could not be judged (missing or invalid results, a
    broken case): falsy, like a failed Report, so that all(results.values()) is False.
    `error` is the FlashMaskError raised."""

    passed = False

    def __init__(self, error):
        self.error = error

    def __bool__(self):
        return False

    def __str__(self):
        return f"invalid: {self.error}"

    def __repr__(self):
        return f"CaseError({self.error!r})"


_MANIFEST_MAX_BYTES = 64 << 20


def _read_manifest(suite_dir):
    """manifest.json as the CLI reads it: a regular file (a FIFO would block, /dev/zero never
    end) of at most 64 MiB, a flashmask suite with a non-empty list of plain case names."""
    import json
    import stat
    path = os.path.join(suite_dir, "manifest.json")
    _lib.path_arg(path, "suite_dir")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as e:
        raise _lib.FileError(5, f"{path}: cannot open: {e.strerror}", "check_suite") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise _lib.FileError(5, f"{path}: not a regular file", "check_suite")
        if info.st_size > _MANIFEST_MAX_BYTES:
            raise _lib.FileError(5, f"{path}: larger than 64 MiB", "check_suite")
        with os.fdopen(os.dup(fd), "rb") as f:
            text = f.read(_MANIFEST_MAX_BYTES + 1)
    finally:
        os.close(fd)
    try:
        manifest = json.loads(text)
    except ValueError as e:
        raise _lib.InvalidInput(6, f"{path}: invalid JSON ({e})", "check_suite") from None
    cases = manifest.get("cases") if isinstance(manifest, dict) else None
    if not isinstance(manifest, dict) or manifest.get("format") != "flashmask-suite" or \
            not isinstance(cases, list) or not cases:
        raise _lib.InvalidInput(6, f"{path}: not a flashmask suite manifest (need \"format\": "
                                "\"flashmask-suite\" and a non-empty \"cases\" array)",
                                "check_suite")
    names = []
    for entry in cases:
        name = entry.get("name") if isinstance(entry, dict) else None
        # a plain name inside the suite: no absolute path, no separator, no '..' or '.x'
        if not isinstance(name, str) or not name or "/" in name or "\0" in name or \
                name.startswith(".") or os.path.isabs(name):
            raise _lib.InvalidInput(6, f"{path}: a case without a plain \"name\" ({name!r})",
                                    "check_suite")
        names.append(name)
    return names


def check_suite(suite_dir, candidates_dir, dtype=None, allow_fa2_inf_lse=False,
                forward_only=False, recompute=False, rule="derived", naive=False):
    """Judge CANDIDATES/<name>/ for every case of SUITE/manifest.json (flashmask gen-suite):
    {name: Report, or a CaseError (falsy) holding the FlashMaskError raised for that case}.
    A manifest that is missing, not a regular file, malformed, empty or names a case outside
    the suite raises."""
    names = _read_manifest(suite_dir)
    _options(dtype, allow_fa2_inf_lse, forward_only, recompute, rule, naive)  # raise once
    results = {}
    for name in names:
        try:
            results[name] = check_dirs(os.path.join(suite_dir, name),
                                       os.path.join(candidates_dir, name), dtype,
                                       allow_fa2_inf_lse, forward_only, recompute, rule,
                                       naive)
        except _lib.FlashMaskError as e:
            results[name] = CaseError(e)
    return results


ORACLES = ("reference", "reference-cuda")


def _gpu_reference(q, k, v, dout, mask, scale, dtype, forward_only):
    """The float64 expected outputs computed on the GPU (fm_cuda_reference_*) from the inputs
    rounded to dtype, as fm_check_case computes them on the CPU."""
    from .attention import backward, forward, round_to
    qx, kx, vx = (round_to(x, dtype) for x in (q, k, v))
    out, lse = forward(qx, kx, vx, mask, scale, "reference-cuda")
    ref = {"out": out, "lse": lse}
    if not forward_only:
        dq, dk, dv = backward(qx, kx, vx, out, lse, round_to(dout, dtype), mask, scale,
                              "reference-cuda")
        ref.update(dq=dq, dk=dk, dv=dv)
    return ref


def check_arrays(q, k, v, dout, mask, candidate, dtype, scale=None, reference=None,
                 allow_fa2_inf_lse=False, forward_only=False, rule="derived",
                 oracle="reference", naive=False):
    """Judge `candidate` (dict out, lse[, dq, dk, dv]) computed in `dtype` from these inputs.
    `reference` (dict, optional) holds the float64 expected outputs; without it the oracle
    computes them from the inputs rounded to dtype: on the CPU (oracle="reference", the tiled
    float64 reference on every core) or on the GPU (oracle="reference-cuda", the same function
    in float64 on the GPU: seconds at S = 8192; docs/reference-cuda.md). The bounds of the
    pass rule and the naive computation run on the CPU either way. naive=True runs the naive
    computation under the derived rule even where it cannot change the verdict (to report
    naive_max_abs; by default it runs only where the inputs could overflow X)."""
    if oracle not in ORACLES:
        raise _lib.InvalidInput(1, f"oracle {oracle!r}; expected one of {ORACLES}", "oracle")
    opt = _array_options(dtype, allow_fa2_inf_lse, forward_only, "check_arrays", rule, naive)
    q64 = _lib.as_c(q, np.float64, "q", 4)
    k64 = _lib.as_c(k, np.float64, "k", 4)
    p = problem_for(q64, k64, mask, scale, dtype)
    if reference is None and oracle == "reference-cuda":
        reference = _gpu_reference(q64, k64, v, dout, mask, scale, dtype, forward_only)
    r, cand, keep = _judged_tensors(p, q64, k64, v, dout, candidate, reference)
    rep = _lib.CheckReport()
    cm = mask.c()
    _lib.check(lib.fm_check_case(ctypes.byref(p), ctypes.byref(cm), ctypes.byref(r),
                                 ctypes.byref(cand), ctypes.byref(opt), ctypes.byref(rep)),
               "check_arrays")
    return Report(rep)


def atol(ref, dtype):
    """atol_X of docs/spec.md §5 for these reference values (floor included, see oracle.h)."""
    a = _lib.as_c(ref, np.float64, "ref")
    return lib.fm_oracle_atol(DTYPES[dtype], _lib.dptr(a), a.size)


__all__ = ["Report", "CaseError", "check_dirs", "check_suite", "check_arrays", "atol",
           "ORACLES"]
