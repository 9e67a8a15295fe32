"""bench/oracle_gpu_judge.py — the CPU half of bench/oracle_gpu_rates.py: judges the candidates
of one problem under both rules (derived, fa) with flashmask.check_arrays, the C rule of
`flashmask check`, against the float64 reference (computed here on the CPU unless the driver
sent one from the GPU's float64 reference). Runs in worker processes, one thread each, so that
it imports only NumPy and flashmask (no torch): the driver keeps the GPU busy meanwhile.

judge(job) takes a dict: pr (the problem's description), q, k, v, dout (float64 arrays holding
dtype values), bounds, causal (the mask), scale, ref (dict or None), cands ({backend: (dict of
out, lse, dq, dk, dv; own_lse)}), cli (flashmask CLI or None), out (directory), rules
(optional: the rules to apply, default both). It returns one record per candidate: backend,
dtype, rows (size class), gqa, own_lse, the verdict of each rule applied, the
masked-rows-convention flag, the worst derived error/bound, and the reasons of any failure.
A few FA-rule failures are also written as case + candidate directories and judged again
through the CLI (record["cli"]), to show that the command agrees with the in-process call.
Layer: bench, over the Python binding.
"""

import os
import subprocess
import time

import numpy as np

import flashmask as fm


def size_class(sq):
    return "1-8" if sq <= 8 else "9-200" if sq <= 200 else "201-1024" if sq <= 1024 else ">1024"


def _cli_check(cli, tmp, tag, q, k, v, dout, mask, dtype, scale, ref, cand):
    """The same judgement through `flashmask check` (files), both rules: exit codes."""
    cdir, rdir = os.path.join(tmp, tag, "case"), os.path.join(tmp, tag, "cand")
    os.makedirs(os.path.join(tmp, tag), exist_ok=True)
    fm.save_case(cdir, q, k, v, dout, mask, dtype, scale, expected=ref)
    fm.save_results(rdir, fm.load_case(cdir), **cand)
    return {rule: subprocess.run([cli, "check", "--case", cdir, "--candidate", rdir,
                                  "--rule", rule], capture_output=True, text=True).returncode
            for rule in ("derived", "fa")}


def judge(job):
    pr = job["pr"]
    dt = pr["dtype"]
    q, k, v, dout, scale = job["q"], job["k"], job["v"], job["dout"], job["scale"]
    c0 = time.process_time()
    mask = fm.Mask(job["bounds"], pr["sq"], job["causal"])
    ref = job["ref"] if job["ref"] is not None else fm.reference(q, k, v, dout, mask, scale)
    records = []
    for name, (cand, own_lse) in job["cands"].items():
        if cand.get("lse") is None:  # the backend gives none: the reference's in float32
            cand = dict(cand, lse=ref["lse"].astype(np.float32).astype(np.float64))
        rec = {"backend": name, "dtype": dt, "rows": size_class(pr["sq"]),
               "gqa": pr["hq"] > pr["hk"], "own_lse": bool(own_lse), "masked_conv": False,
               "worst": 0.0, "why": {}}
        for rule in job.get("rules", ("derived", "fa")):
            rep = fm.check_arrays(q, k, v, dout, mask, cand, dt, scale, ref, rule=rule)
            whys = [f"{n}: {t['why']}" for n, t in rep.tensors.items() if not t["passed"]]
            passed = rep.passed
            if whys and all("fully masked rows" in w for w in whys):
                # a convention (finite lse or nonzero out on empty rows), not accuracy: counted
                # apart (docs/oracle.md section 5 discusses SDPA's finite lse)
                rec["masked_conv"] |= rule == "derived"
                passed = True
            rec[rule] = passed
            if rule == "derived":
                rec["worst"] = max(t["ratio"] for t in rep.tensors.values())
            if not passed:
                rec["why"][rule] = whys
        out = job.get("out")
        if job.get("cli") and out and rec.get("fa") is False and pr["sq"] * pr["sk"] <= 64 * 64:
            tmp = os.path.join(out, "cli_cases")
            os.makedirs(tmp, exist_ok=True)
            if sum(d.startswith(name + "-") for d in os.listdir(tmp)) < 3:
                try:
                    rec["cli"] = _cli_check(job["cli"], tmp, f"{name}-{pr['id']}", q, k, v, dout,
                                            mask, dt, scale, ref, cand)
                except Exception as e:  # the measurement goes on; the reason is kept
                    rec["cli"] = f"error: {e}"
        records.append(rec)
    if records:  # the job's CPU seconds (reference included), on its first record
        records[0]["cpu_s"] = time.process_time() - c0
    return records
