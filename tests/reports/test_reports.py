"""tests/reports/test_reports.py — the machine-readable outputs of the CLI: `version --json`,
`masks --json`, `show-dense --json`, `demo --json`, `bench --json --svg` and `check-suite --junit`, checked for structure and for
agreeing with what the library computes (tile densities against flashmask.Mask.tile_stats,
verdicts against a candidate made to fail on purpose). Run by tests/reports/meson.build with
Debian's python3 against this build (FLASHMASK_EXE, FLASHMASK_LIB, PYTHONPATH)."""

import json
import os
import shutil
import subprocess
import tempfile
import unittest
import xml.etree.ElementTree as ET

import numpy as np

import flashmask as fm

EXE = os.environ.get("FLASHMASK_EXE") or fm.cli_path()
SVG = "{http://www.w3.org/2000/svg}"


def run(*args, check=True):
    p = subprocess.run([EXE, *args], capture_output=True, text=True)
    if check and p.returncode != 0:
        raise AssertionError(f"flashmask {' '.join(args)}: exit {p.returncode}\n{p.stderr}")
    return p


class Reports(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="fm-reports-")

    def tearDown(self):
        shutil.rmtree(self.tmp)

    def path(self, name):
        return os.path.join(self.tmp, name)

    def test_version_json(self):
        v = json.loads(run("version", "--json").stdout)
        self.assertEqual(v["version"], fm.__version__)
        self.assertEqual(v["headers_version"], fm.__version__)
        self.assertEqual(set(v["implementations"]), {"reference", "cpu", "cuda", "reference-cuda"})
        for name, impl in v["implementations"].items():
            self.assertEqual(impl["available"], fm.available(name))
            self.assertEqual(impl["reason"] == "", impl["available"])

    def test_masks_json(self):
        d = json.loads(run("masks", "--json", "--seqlen", "64").stdout)
        self.assertEqual(d["seqlen"], 64)
        self.assertEqual([f["name"] for f in d["families"]], fm.FAMILIES)
        for f in d["families"]:
            self.assertEqual(f["help"], fm.family_help(f["name"]))
            self.assertIsInstance(f["defaults"], dict)
        docs = {f["name"]: f for f in d["families"]}
        self.assertTrue(docs["causal"]["causal"])
        self.assertFalse(docs["full"]["causal"])

    def test_demo_json(self):
        p = run("demo", "--family", "causal_document", "--family", "full", "--seqlen", "96",
                "--head-dim", "16", "--q-heads", "2", "--impl", "cpu", "--json",
                self.path("d.json"))
        with open(self.path("d.json")) as f:
            d = json.load(f)
        self.assertEqual(d["problem"]["seqlen_q"], 96)
        self.assertEqual([x["family"] for x in d["families"]], ["full", "causal_document"])
        self.assertEqual(d["totals"], {**d["totals"], "runs": 2, "pass": 2, "fail": 0,
                                       "errors": 0})
        for fam in d["families"]:
            m = fm.build(fam["family"], seqlen_q=96)
            self.assertEqual(fam["tiles"]["total"], m.tile_stats(128, 128)["total"])
            self.assertAlmostEqual(fam["allowed_fraction"], m.allowed_pairs() / 96 ** 2)
            ref, cpu = fam["runs"]
            self.assertEqual((ref["impl"], cpu["impl"], cpu["dtype"]),
                             ("reference", "cpu", "float32"))
            self.assertTrue(cpu["pass"])
            for t in ("out", "lse", "dq", "dk", "dv"):
                # the default (derived) rule bounds each element; ratio = worst |err| / bound
                self.assertLessEqual(cpu["tensors"][t]["ratio"], 1.0)
        self.assertIn("2 runs: 2 pass", p.stdout)  # the table is still printed

    def test_bench_json_and_svg(self):
        fams = ["full", "causal", "sliding_window"]
        run("bench", "--seqlen", "256", "--head-dim", "32", "--reps", "3", "--threads", "1",
            "--gemm-size", "64", "--families", ",".join(fams), "--json", self.path("b.json"),
            "--svg", self.path("b.svg"))
        with open(self.path("b.json")) as f:
            b = json.load(f)
        self.assertEqual([r["family"] for r in b["families"]], fams)
        for r in b["families"]:
            st = fm.build(r["family"], seqlen_q=256).tile_stats(128, 128)
            self.assertAlmostEqual(r["tile_density"], (st["partial"] + st["unmasked"])
                                   / st["total"])
            self.assertGreater(r["fwd"]["ms"], 0)
            self.assertGreater(r["bwd"]["ms"], 0)
        self.assertAlmostEqual(b["families"][0]["fwd"]["time_per_density"], 1.0)
        # time / density is taken against the full mask repetition by repetition: the full
        # mask's own is exactly 1 every time, and every range holds its median
        for pas in ("fwd", "bwd"):
            self.assertEqual(b["families"][0][pas]["time_per_density_range"], [1, 1, 1])
            for r in b["families"]:
                med, lo, hi = r[pas]["time_per_density_range"]
                self.assertEqual(med, r[pas]["time_per_density"])
                self.assertTrue(0 < lo <= med <= hi, (r["family"], pas, lo, med, hi))
        root = ET.parse(self.path("b.svg")).getroot()
        points = {g.get("class"): [t.text for t in g.iter(SVG + "text")]
                  for g in root.iter(SVG + "g")}
        self.assertEqual(points, {"fwd": fams, "bwd": fams})
        # forward only: no backward series, nulls in the JSON
        run("bench", "--seqlen", "128", "--head-dim", "16", "--reps", "1", "--threads", "1",
            "--gemm-size", "0", "--naive-mb", "0", "--families", "causal", "--no-backward",
            "--json", self.path("f.json"), "--svg", self.path("f.svg"))
        with open(self.path("f.json")) as f:
            r = json.load(f)["families"][0]
        self.assertIsNone(r["bwd"]["gflops"])
        self.assertIsNone(r["naive_fwd_ms"])
        self.assertEqual(r["sgemm_gflops"], [None, None, None])
        classes = [g.get("class") for g in ET.parse(self.path("f.svg")).getroot().iter(SVG + "g")]
        self.assertEqual(classes, ["fwd"])

    def test_show_dense_json(self):
        case = self.path("dense")
        run("gen-dense", "--pattern", "random", "--seqlen", "96", "--head-dim", "8", "--out",
            case)
        run("show-dense", "--case", case, "--block-q", "32", "--block-k", "16", "--json",
            self.path("s.json"))
        with open(self.path("s.json")) as f:
            d = json.load(f)
        allowed = np.load(os.path.join(case, "mask_dense.npy"))
        self.assertEqual(d["allowed_pairs"], int(allowed.sum()))
        self.assertEqual(d["cells"], allowed.size)
        self.assertEqual((d["form"], d["block_q"], d["block_k"]), ("bbm", 32, 16))
        bbm = fm.sparse.BBM(allowed, 32, 16)
        codes = bbm.codes
        self.assertEqual([d["bbm"][k] for k in ("total", "empty", "partial", "full")],
                         [codes.size, int((codes == 2).sum()), int((codes == 1).sum()),
                          int((codes == 0).sum())])

    def test_check_suite_junit(self):
        suite, cands = self.path("suite"), self.path("cands")
        os.makedirs(cands)
        os.makedirs(suite)
        names = ["good", "bad", "missing"]
        for i, name in enumerate(names):
            run("gen", "--mask", "causal", "--seqlen", "40", "--head-dim", "8", "--seed",
                str(i), "--out", os.path.join(suite, name))
        with open(os.path.join(suite, "manifest.json"), "w") as f:
            json.dump({"format": "flashmask-suite", "cases": [{"name": n} for n in names]}, f)
        for name in ("good", "bad"):
            run("run", "--impl", "cpu", "--case", os.path.join(suite, name), "--out",
                os.path.join(cands, name))
        out = os.path.join(cands, "bad", "out.npy")
        np.save(out, np.load(out) + 0.25)  # far past any bound
        p = run("check-suite", "--suite", suite, "--candidates", cands, "--junit",
                self.path("j.xml"), check=False)
        self.assertEqual(p.returncode, 1)
        root = ET.parse(self.path("j.xml")).getroot()
        ts = root.find("testsuite")
        self.assertEqual((ts.get("tests"), ts.get("failures"), ts.get("errors")), ("3", "1", "1"))
        cases = {c.get("name"): c for c in ts.findall("testcase")}
        self.assertEqual(list(cases), names)
        self.assertEqual(list(cases["good"]), [])
        failure = cases["bad"].find("failure")
        self.assertIn("out", failure.get("message") + failure.text)
        self.assertIn("out FAIL: max_abs", failure.text)
        self.assertIsNotNone(cases["missing"].find("error"))


if __name__ == "__main__":
    unittest.main()
