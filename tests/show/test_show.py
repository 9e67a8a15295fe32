"""tests/show/test_show.py — suite 'show': `flashmask show` writes well-formed SVG whose tile
rectangles match the library's tile classification, whose allowed-element rectangles cover
exactly the allowed pairs, and refuses invalid arguments with exit code 2.

Run by meson (tests/show/meson.build) with Debian's /usr/bin/python3:
    test_show.py FLASHMASK_EXE    (FLASHMASK_LIB and PYTHONPATH set for the Python binding)
Layer: tests of the tools CLI; the expected counts come from masks/ through python/flashmask.
"""

import os
import subprocess
import sys
import tempfile
import unittest
import xml.etree.ElementTree as ET

import flashmask as fm

EXE = sys.argv.pop(1) if len(sys.argv) > 1 else os.environ.get("FLASHMASK_EXE", "flashmask")
SVG = "{http://www.w3.org/2000/svg}"


def show(*args):
    return subprocess.run([EXE, "show", *args], capture_output=True, text=True)


def rects(root, cls):
    """Rectangles whose class attribute is `cls` or starts with `cls ` (e.g. 'tile')."""
    return [r for r in root.iter(SVG + "rect")
            if r.get("class") == cls or (r.get("class") or "").startswith(cls + " ")]


class ShowTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.out = os.path.join(self.tmp.name, "m.svg")

    def tearDown(self):
        self.tmp.cleanup()

    def picture(self, *args):
        r = show(*args, "--out", self.out)
        self.assertEqual(r.returncode, 0, r.stderr)
        return ET.parse(self.out).getroot()  # raises on malformed XML

    def check_family(self, family, sq, sk, bq, bk, causal="bottom_right"):
        root = self.picture("--mask", family, "--seqlen-q", str(sq), "--seqlen-k", str(sk),
                            "--block-q", str(bq), "--block-k", str(bk), "--elements", "on",
                            *(["--causal", causal]))
        mask = fm.build(family, seqlen_q=sq, seqlen_k=sk, alignment=causal)
        classes = mask.tile_classes(bq, bk)[0, 0]
        tiles = rects(root, "tile")
        n_qb, n_kb = -(-sq // bq), -(-sk // bk)
        self.assertEqual(len(tiles), n_qb * n_kb, family)
        # the tiles are written row by row; each one's class is the library's
        for t, expect in zip(tiles, classes.reshape(-1)):
            self.assertEqual(t.get("class"), "tile " + fm.TILE_CLASSES[int(expect)], family)
        stats = mask.tile_stats(bq, bk)
        for name in ("masked", "partial", "unmasked"):
            self.assertEqual(len(rects(root, "tile " + name)), stats[name], (family, name))
        # allowed-element rectangles: one cell high, and their widths sum to the allowed pairs
        cells = rects(root, "allowed")
        cell = float(cells[0].get("height")) if cells else 1.0
        covered = sum(round(float(r.get("width")) / cell) for r in cells)
        self.assertEqual(covered, mask.allowed_pairs(), family)
        dense = mask.to_dense()[0, 0]
        self.assertEqual(covered, int(dense.sum()), family)

    def test_every_family_square(self):
        for family in fm.FAMILIES:
            with self.subTest(family=family):
                self.check_family(family, 64, 64, 16, 16)

    def test_ragged_tiles_and_unequal_lengths(self):
        # Sq != Sk, block sizes that do not divide them (cut last tiles), both alignments
        for family in ("causal", "sliding_window", "document", "prefix_lm_causal"):
            for causal in ("bottom_right", "top_left"):
                with self.subTest(family=family, causal=causal):
                    self.check_family(family, 40, 70, 12, 9, causal)

    def test_legend_states_densities(self):
        root = self.picture("--mask", "causal", "--seqlen", "32", "--block", "8")
        texts = " ".join(t.text or "" for t in root.iter(SVG + "text"))
        # causal 32x32: 528 allowed pairs of 1024; tiles 4x4: 6 masked, 10 of 16 cost work
        self.assertIn("element density: 0.5156", texts)
        self.assertIn("tile density: 0.6250", texts)

    def test_params_and_case_dir(self):
        root = self.picture("--mask", "causal_document", "--seqlen", "48",
                            "--param", "doc_lens=10,20,18", "--block", "8")
        self.assertIn('"doc_lens":[10,20,18]', root.find(SVG + "title").text)
        case = os.path.join(self.tmp.name, "case")
        r = subprocess.run([EXE, "gen", "--mask", "document", "--seqlen", "40", "--head-dim",
                            "8", "--out", case], capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        root = self.picture("--case", case, "--block", "8")
        self.assertEqual(len(rects(root, "tile")), 25)

    def test_text_is_escaped(self):
        title = 'a<b & "c" \'d\' >'
        root = self.picture("--mask", "causal", "--seqlen", "16", "--block", "4", "--title", title)
        self.assertTrue(root.find(SVG + "title").text.startswith(title))
        self.assertIn(title, [t.text for t in root.iter(SVG + "text")])

    def test_large_mask_omits_elements(self):
        root = self.picture("--mask", "sliding_window", "--seqlen", "2048", "--block", "128")
        self.assertEqual(len(rects(root, "tile")), 256)
        self.assertEqual(len(rects(root, "allowed")), 0)

    def test_stdout(self):
        r = show("--mask", "full", "--seqlen", "8", "--block", "4", "--out", "-")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(len(rects(ET.fromstring(r.stdout), "tile")), 4)

    def test_docs_pictures_are_current(self):
        # docs/img/*.svg are what docs/img/make.sh draws with this build: the docs stay true
        img = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "docs", "img")
        r = subprocess.run(["sh", os.path.join(img, "make.sh"), EXE, self.tmp.name],
                           capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        made = sorted(f for f in os.listdir(self.tmp.name) if f.endswith(".svg"))
        self.assertEqual(made, sorted(f for f in os.listdir(img) if f.endswith(".svg")))
        for name in made:
            with open(os.path.join(img, name), "rb") as a, \
                 open(os.path.join(self.tmp.name, name), "rb") as b:
                self.assertTrue(a.read() == b.read(),
                                f"docs/img/{name} is stale: run sh docs/img/make.sh "
                                "build/tools/flashmask")

    def test_invalid_arguments_exit_2(self):
        bad = [
            [],                                                   # no --out, no mask
            ["--out", self.out],                                  # no mask source
            ["--mask", "nope", "--out", self.out],                # unknown family
            ["--mask", "causal", "--block", "0", "--out", self.out],
            ["--mask", "causal", "--block-q", "x", "--out", self.out],
            ["--mask", "causal", "--seqlen", "-3", "--out", self.out],
            ["--mask", "causal", "--causal", "none", "--out", self.out],
            ["--mask", "sliding_window", "--param", "window=0", "--out", self.out],
            ["--mask", "document", "--param", "doc_lens=3,3", "--out", self.out],
            ["--mask", "causal", "--mask-head", "1", "--out", self.out],
            ["--mask", "causal", "--elements", "some", "--out", self.out],
            ["--mask", "causal", "--dtype", "float16", "--out", self.out],
            ["--mask", "causal", "--case", self.tmp.name, "--out", self.out],
            ["--case", os.path.join(self.tmp.name, "absent"), "--out", self.out],
            ["--mask", "causal", "--seqlen", "100000", "--block", "1", "--out", self.out],
            ["--mask", "causal", "--frobnicate", "--out", self.out],
            ["--mask", "causal", "--out"],                        # missing value
            ["--mask", "causal", "--out", os.path.join(self.tmp.name, "no", "x.svg")],
        ]
        for args in bad:
            with self.subTest(args=args):
                r = show(*args)
                self.assertEqual(r.returncode, 2, (args, r.stdout, r.stderr))
                self.assertTrue(r.stderr.startswith("flashmask show: "), r.stderr)
                self.assertFalse(os.path.exists(self.out), args)  # nothing half-written


if __name__ == "__main__":
    unittest.main(verbosity=2)
