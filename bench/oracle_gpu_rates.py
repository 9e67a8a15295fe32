#!/usr/bin/env python3
"""bench/oracle_gpu_rates.py — false alarms of the oracle's two rules (derived, fa) on real GPU
kernels, all of them correct: libflashmask's CUDA kernels, FlexAttention (torch.compile), and
SDPA's flash, memory-efficient and cuDNN backends (bench/oracle_gpu_backends.py); float16 and
bfloat16; random problems from 1 row and 1 key up to 4096 x 4096, every mask family a backend
can express, GQA, both causal alignments, fully masked rows (docs/oracle.md section 6.2).

This process keeps the GPU busy: it draws a problem, runs every backend on it and hands the
candidates to a pool of worker processes (bench/oracle_gpu_judge.py, one CPU thread each),
which compute the float64 reference (on the CPU; for problems past 512 x 512 the driver
computes it on the GPU, impl "reference-cuda", when built) and judge every candidate under
both rules with flashmask.check_arrays, the C rule of `flashmask check`. The first problems
drawn are the large ones (--big of them, Sq and Sk in 1025..4096, the first 4096 x 4096), each
judged one candidate and rule per job, so that their judgement overlaps the rest. --shapes menu
draws only the shapes of FLEX_MENU up to --big-max (the mode of the FlexAttention run: one
compiled graph per shape), each large one once, first.

Writes OUT/NAME.json: counts per backend, dtype, size class (rows 1-8, 9-200, 201-1024, >1024)
and GQA, per backend ("by_backend"), the worst derived error/bound, failures with reasons, the
backends' errors, Flex's compile seconds per shape. Failures whose only reason is a fully masked
row's convention (SDPA's finite lse there) are counted apart ("masked_conv"). --merge A.json
B.json ... adds such files up into OUT/NAME.json. Exit 1 when the derived rule failed a
candidate.

Usage (GPU host; bench/oracle_gpu_host.sh runs it):
  FLASHMASK_LIB=build-gpu/libflashmask.so PYTHONPATH=python python3 bench/oracle_gpu_rates.py \\
      --out $OUT --cli build-gpu/tools/flashmask [--budget 240] [--seed N] [--workers 12] \\
      [--backends ours,sdpa-flash,sdpa-efficient,sdpa-cudnn] [--shapes random|menu] [--big 6]
  without a GPU (the driver and judging path, libflashmask's cpu layer as the candidate):
  PYTHONPATH=python python3 bench/oracle_gpu_rates.py --backends cpu --budget 20 --out /tmp/x \\
      --big 1 --big-max 600          (meson test oracle_gpu_rates_dry: bench/oracle_gpu_dry.sh)
Layer: bench, over the Python binding (and PyTorch through oracle_gpu_backends).
"""

import argparse
import concurrent.futures as cf
import json
import multiprocessing as mp
import os
import sys
import time
import traceback

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import flashmask as fm  # noqa: E402
import oracle_gpu_judge  # noqa: E402

# (batch, q heads, kv heads, Sq, Sk, D, dtype): FlexAttention's shapes (--shapes menu), from
# 1 x 1 to 4096 x 4096, GQA, both dtypes: each is compiled once and reused with other masks
FLEX_MENU = [
    (1, 1, 1, 1, 1, 64, "float16"),
    (2, 2, 1, 3, 8, 64, "bfloat16"),
    (1, 4, 2, 8, 5, 128, "float16"),
    (2, 2, 2, 40, 40, 64, "bfloat16"),
    (1, 4, 1, 100, 160, 128, "float16"),
    (1, 2, 2, 256, 256, 64, "bfloat16"),
    (1, 2, 1, 700, 600, 64, "float16"),
    (1, 2, 1, 4096, 4096, 64, "bfloat16"),
]


def draw_problem(rng, big=False, menu=None, big_max=4096):
    family = str(rng.choice(fm.FAMILIES))
    align = str(rng.choice(["bottom_right", "top_left"]))
    if menu:
        b, hq, hk, sq, sk, d, dtype = menu[int(rng.integers(len(menu)))]
        return dict(b=b, hq=hq, hk=hk, sq=sq, sk=sk, d=d, family=family, align=align, dtype=dtype)
    dtype = str(rng.choice(["float16", "bfloat16"]))
    if big:
        lo = big_max // 4 + 1
        sq, sk = int(rng.integers(lo, big_max + 1)), int(rng.integers(lo, big_max + 1))
        if rng.random() < 0.5:
            sk = sq
        return dict(b=1, hq=int(rng.choice([1, 2])), hk=1, sq=sq, sk=sk, d=64, family=family,
                    align=align, dtype=dtype)
    r = rng.random()
    if r < 0.47:  # where the FA rule's false alarms live
        sq, sk, ds = int(rng.integers(1, 9)), int(rng.integers(1, 9)), [64, 128, 256]
    elif r < 0.94:
        sq, sk, ds = int(rng.integers(9, 201)), int(rng.integers(9, 201)), [64, 128, 256]
    else:  # about 20 times the CPU time of judging a 9-200 problem: fewer of them
        sq, sk, ds = int(rng.integers(201, 1025)), int(rng.integers(201, 1025)), [64, 128]
    if rng.random() < 0.5:
        sk = sq
    hk = int(rng.choice([1, 2]))
    hq = hk * int(rng.choice([1, 2, 4]))
    b = 1 if sq > 200 else int(rng.integers(1, 3))
    return dict(b=b, hq=hq, hk=hk, sq=sq, sk=sk, d=int(rng.choice(ds)), family=family,
                align=align, dtype=dtype)


def make_inputs(pr, rng):
    dt = pr["dtype"]
    shp_q, shp_k = (pr["b"], pr["hq"], pr["sq"], pr["d"]), (pr["b"], pr["hk"], pr["sk"], pr["d"])
    q, dout = (fm.round_to(rng.standard_normal(shp_q), dt) for _ in range(2))
    k, v = (fm.round_to(rng.standard_normal(shp_k), dt) for _ in range(2))
    mask = fm.build(pr["family"], pr["b"], 1, pr["sq"], pr["sk"], pr["align"])
    return q, k, v, dout, mask


def run_cpu(pr, q, k, v, dout, mask, scale):
    """libflashmask's float32 cpu layer, results rounded to the dtype: the candidate of a run
    without a GPU (--backends cpu), which tests this driver and the judging path."""
    out, lse = fm.forward(q, k, v, mask, scale, impl="cpu", dtype="float32")
    dq, dk, dv = fm.backward(q, k, v, out, lse, dout, mask, scale, impl="cpu", dtype="float32")
    cand = {"out": out, "lse": lse, "dq": dq, "dk": dk, "dv": dv}
    for t in ("out", "dq", "dk", "dv"):
        cand[t] = fm.round_to(cand[t], pr["dtype"])
    return cand, True


class Tally:
    """Counts of the judged records, per (backend, dtype, rows, gqa) and per backend."""

    def __init__(self):
        self.cells, self.failures, self.cli, self.partial = {}, [], [], {}

    def add(self, rec, pr):
        """rec may hold one rule's verdict (a large problem is judged one candidate and rule
        per job): counted once both are in."""
        key = (pr["id"], rec["backend"])
        if key in self.partial:
            old = self.partial.pop(key)
            rec = dict(old, **{r: rec[r] for r in ("derived", "fa") if r in rec},
                       why={**old["why"], **rec["why"]}, worst=max(old["worst"], rec["worst"]),
                       masked_conv=old["masked_conv"] or rec["masked_conv"],
                       cpu_s=old.get("cpu_s", 0.0) + rec.get("cpu_s", 0.0))
        if "derived" not in rec or "fa" not in rec:
            self.partial[key] = rec
            return
        key = (rec["backend"], rec["dtype"], rec["rows"], "gqa" if rec["gqa"] else "mha")
        c = self.cells.setdefault(key, {"judged": 0, "derived": 0, "fa": 0, "own_lse": 0,
                                        "masked_conv": 0, "worst_derived": 0.0})
        c["judged"] += 1
        c["derived"] += int(not rec["derived"])
        c["fa"] += int(not rec["fa"])
        c["own_lse"] += int(rec["own_lse"])
        c["masked_conv"] += int(rec["masked_conv"])
        c["worst_derived"] = max(c["worst_derived"], rec["worst"])
        c["judge_cpu_s"] = c.get("judge_cpu_s", 0.0) + rec.get("cpu_s", 0.0)
        for rule, whys in rec["why"].items():
            if len(self.failures) < 300 or rule == "derived":
                self.failures.append({"backend": rec["backend"], "rule": rule, "problem": pr,
                                      "why": whys})
        if "cli" in rec:
            self.cli.append({"backend": rec["backend"], "problem": pr, "exit": rec["cli"],
                             "in_process": {"derived": rec["derived"], "fa": rec["fa"]}})


def summarize(cells):
    """Per-backend totals of a cells dict {(backend, dtype, rows, gqa): counts}."""
    by = {}
    for (b, _, _, _), c in cells.items():
        s = by.setdefault(b, {"judged": 0, "derived": 0, "fa": 0, "masked_conv": 0,
                              "worst_derived": 0.0})
        for f in ("judged", "derived", "fa", "masked_conv"):
            s[f] += c[f]
        s["worst_derived"] = max(s["worst_derived"], c["worst_derived"])
    return by


def report(res, path):
    with open(path, "w") as f:
        json.dump(res, f, indent=1, default=str)
    print(f"{res['problems']} problems, {res['candidates']} candidates, {res['seconds']:.0f} s")
    print(f"{'backend':15} {'dtype':9} {'rows':8} {'gqa':4} {'judged':>7} {'derived':>8} "
          f"{'fa':>6} {'own lse':>8} {'masked conv.':>12} {'worst err/bound':>16}")
    for r in res["table"]:
        print(f"{r['backend']:15} {r['dtype']:9} {r['rows']:8} {r['gqa']:4} {r['judged']:7d} "
              f"{r['derived']:8d} {r['fa']:6d} {r['own_lse']:8d} {r['masked_conv']:12d} "
              f"{r['worst_derived']:16.3g}")
    for name, s in sorted(res["by_backend"].items()):
        print(f"total {name:15} judged {s['judged']:6d}  derived fails {s['derived']:4d}  "
              f"fa fails {s['fa']:4d}  masked conv. {s['masked_conv']:4d}  "
              f"worst derived err/bound {s['worst_derived']:.3g}")
    for name, e in res["errors"].items():
        print(f"{name}: {e['count']} raised; first:\n{e['first']}")
    for r in res["cli"]:
        print(f"cli check {r['backend']}: exit {r['exit']} (in-process {r['in_process']})")


def merge(paths, out):
    cells, res = {}, {"sources": [], "problems": 0, "candidates": 0, "seconds": 0.0,
                      "errors": {}, "failures": [], "cli": [], "flex_compile_s": {}}
    for p in paths:
        with open(p) as f:
            r = json.load(f)
        res["sources"].append({"file": os.path.basename(p), "seed": r["seed"],
                               "backends": r["backends"], "problems": r["problems"],
                               "candidates": r["candidates"], "seconds": r["seconds"]})
        for k in ("problems", "candidates"):
            res[k] += r[k]
        res["seconds"] = max(res["seconds"], r["seconds"])
        for k in ("torch", "device"):
            res[k] = r.get(k)
        for n, e in r["errors"].items():
            res["errors"][f"{n} ({os.path.basename(p)})"] = e
        res["failures"] += r["failures"]
        res["cli"] += r["cli"]
        res["flex_compile_s"].update(r.get("flex_compile_s", {}))
        for row in r["table"]:
            key = (row["backend"], row["dtype"], row["rows"], row["gqa"])
            c = {k: v for k, v in row.items() if k not in ("backend", "dtype", "rows", "gqa")}
            if key in cells:
                for f in ("judged", "derived", "fa", "own_lse", "masked_conv"):
                    cells[key][f] += c[f]
                cells[key]["judge_cpu_s"] = cells[key].get("judge_cpu_s", 0.0) + \
                    c.get("judge_cpu_s", 0.0)
                cells[key]["worst_derived"] = max(cells[key]["worst_derived"], c["worst_derived"])
            else:
                cells[key] = c
    res["table"] = [{"backend": b, "dtype": d, "rows": s, "gqa": g, **c}
                    for (b, d, s, g), c in sorted(cells.items())]
    res["by_backend"] = summarize(cells)
    report(res, out)
    return 1 if any(c["derived"] for c in cells.values()) else 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.environ.get("OUT", "."))
    ap.add_argument("--name", default="oracle_gpu_rates", help="OUT/NAME.json")
    ap.add_argument("--cli", default=None, help="flashmask CLI, to judge a few cases as files")
    ap.add_argument("--budget", type=float, default=240.0, help="seconds of drawing problems")
    ap.add_argument("--seed", type=int, default=int(time.time()))
    ap.add_argument("--backends", default="ours,sdpa-flash,sdpa-efficient,sdpa-cudnn")
    ap.add_argument("--shapes", choices=("random", "menu"), default="random")
    ap.add_argument("--big", type=int, default=6,
                    help="large problems first: rows and keys in (BIG_MAX/4, BIG_MAX]")
    ap.add_argument("--big-max", type=int, default=4096, help="the first is BIG_MAX x BIG_MAX")
    ap.add_argument("--workers", type=int, default=max(1, (os.cpu_count() or 2) - 2))
    ap.add_argument("--merge", nargs="+", metavar="JSON", help="add these results up")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    out_json = os.path.join(args.out, args.name + ".json")
    if args.merge:
        return merge(args.merge, out_json)
    names = args.backends.split(",")
    runners, gpu = {"cpu": run_cpu}, None
    if any(n != "cpu" for n in names):
        import oracle_gpu_backends as gpu
        runners.update(gpu.BACKENDS)
    menu = [m for m in FLEX_MENU if max(m[3], m[4]) <= args.big_max] \
        if args.shapes == "menu" else None
    menu_big = [m for m in menu or [] if m[3] * m[4] > 512 * 512]
    menu_small = [m for m in menu or [] if m[3] * m[4] <= 512 * 512]
    ref_cuda = gpu is not None and fm.available("reference-cuda")
    rng = np.random.default_rng(args.seed)
    device = gpu.device_name() if gpu else "no GPU"
    print(f"seed {args.seed}; {device}; backends {names}; shapes {args.shapes}; "
          f"{args.workers} judging workers", flush=True)
    os.environ["OMP_NUM_THREADS"] = "1"  # the workers' OpenMP: one thread each
    pool = cf.ProcessPoolExecutor(args.workers, mp_context=mp.get_context("spawn"))
    tally, errors, pending, failed_on, dropped, ran = Tally(), {}, {}, {}, set(), {}
    t0, problems, n_big = time.time(), 0, 0

    def collect(block):
        done, _ = cf.wait(list(pending), timeout=None if block else 0,
                          return_when=cf.FIRST_COMPLETED)
        for f in done:
            pr = pending.pop(f)
            try:
                for rec in f.result():
                    tally.add(rec, pr)
            except Exception:
                e = errors.setdefault("judge", {"count": 0, "first": None})
                e["count"] += 1
                e["first"] = e["first"] or traceback.format_exc()[-2000:]

    while time.time() - t0 < args.budget:
        if menu:  # each large shape once, first; then the small ones at random
            big = n_big < len(menu_big)
            pr = draw_problem(rng, menu=[menu_big[n_big]] if big else menu_small)
        else:
            big = n_big < args.big
            pr = draw_problem(rng, big=big, big_max=args.big_max)
            if big and n_big == 0:
                pr.update(sq=args.big_max, sk=args.big_max, hq=2)  # the largest, GQA
        try:  # a family's default parameters may not fit a tiny Sk: draw again
            q, k, v, dout, mask = make_inputs(pr, rng)
        except fm.FlashMaskError:
            continue
        n_big += big
        pr["id"] = problems
        problems += 1
        scale = 1.0 / np.sqrt(pr["d"])
        cands = {}
        shape = (pr["b"], pr["hq"], pr["hk"], pr["sq"], pr["sk"], pr["d"], pr["dtype"])
        for name in names:
            # a backend that failed twice on a shape (FlexAttention's compile) is not retried
            # there, and one that failed 20 times without ever running is dropped (never ours):
            # the time goes to the other problems, and the failures are in the JSON
            if failed_on.get((name, shape), 0) >= 2 or name in dropped:
                continue
            try:
                cand, own_lse = runners[name](pr, q, k, v, dout, mask, scale)
                if gpu:
                    gpu.synchronize()
            except Exception:
                e = errors.setdefault(name, {"count": 0, "first": None, "problems": []})
                e["count"] += 1
                e["first"] = e["first"] or traceback.format_exc()[-3000:]
                if len(e["problems"]) < 20:
                    e["problems"].append(pr)
                failed_on[(name, shape)] = failed_on.get((name, shape), 0) + 1
                if e["count"] >= 20 and name != "ours" and not ran.get(name):
                    dropped.add(name)
                continue
            if cand is not None:
                cands[name] = (cand, own_lse)
                ran[name] = ran.get(name, 0) + 1
        if not cands:
            continue
        ref = None
        if ref_cuda and pr["sq"] * pr["sk"] > 512 * 512:
            ref = fm.reference(q, k, v, dout, mask, scale, impl="reference-cuda")
        job = {"pr": pr, "q": q, "k": k, "v": v, "dout": dout, "bounds": mask.bounds,
               "causal": mask.causal, "scale": scale, "ref": ref, "cands": cands,
               "cli": args.cli, "out": args.out}
        if pr["sq"] * pr["sk"] > 512 * 512:  # one job per candidate and rule: in parallel
            for name, c in cands.items():
                for rule in ("derived", "fa"):
                    part = dict(job, cands={name: c}, rules=(rule,))
                    pending[pool.submit(oracle_gpu_judge.judge, part)] = pr
        else:
            pending[pool.submit(oracle_gpu_judge.judge, job)] = pr
        collect(block=len(pending) >= 3 * args.workers)
    drawn_s = time.time() - t0
    while pending:
        collect(block=True)
    pool.shutdown()
    cells = tally.cells
    table = [{"backend": b, "dtype": d, "rows": s, "gqa": g, **c}
             for (b, d, s, g), c in sorted(cells.items())]
    res = {"seed": args.seed, "backends": names, "shapes": args.shapes, "problems": problems,
           "candidates": sum(c["judged"] for c in cells.values()),
           "seconds": time.time() - t0, "drawing_seconds": drawn_s,
           "torch": gpu.torch_version() if gpu else None, "device": device,
           "reference_cuda": ref_cuda, "table": table, "by_backend": summarize(cells),
           "errors": errors, "dropped": sorted(dropped), "failures": tally.failures,
           "cli": tally.cli,
           "flex_compile_s": gpu.FLEX["compile_s"] if gpu else {}}
    report(res, out_json)
    return 1 if any(c["derived"] for c in cells.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
