#!/usr/bin/python3
"""docs/img/make_cuda_figures.py — draws the diagrams of docs/cuda.md with matplotlib:

    roofline.svg      the H200's memory hierarchy and a roofline with its figures
    mma-fragments.svg which lane holds which element of mma.sync m16n8k16's A, B and C
    sw128.svg         the 128-byte swizzle of a [rows][64] 16-bit tile (wgmma.cuh)
    pipeline.svg      forward_wgmma.cu's producer / consumer timeline with its mbarriers
    tile-walk.svg     the tile classes of a mask and a dK/dV block's jumping walk
    wide-stages.svg   forward_wide.cu's stages: a query block's live key blocks, two per stage
    pipelined-backward.svg  backward_pipelined.cu's producer / consumer timeline

The fragment and swizzle pictures are computed from the same formulas as cuda/tc.cuh and
cuda/wgmma.cuh (fm_sw128); the tile picture from the library (Mask.tile_classes) and a NumPy
restatement of rules.h's fm_next_live_qblock, checked against it before drawing.

    FLASHMASK_LIB=build/libflashmask.so PYTHONPATH=python /usr/bin/python3 \
        docs/img/make_cuda_figures.py [OUTDIR]          (default OUTDIR: docs/img/cuda)

(docs/img/cuda/, not docs/img/: tests/show checks that docs/img/*.svg are exactly what
docs/img/make.sh draws with the CLI.)

Layer: documentation.
"""

import os
import sys

import matplotlib

matplotlib.use("svg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.patches import FancyArrowPatch, Rectangle  # noqa: E402

plt.rcParams.update({"svg.fonttype": "none", "svg.hashsalt": "libflashmask", "font.size": 9})
OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                         "cuda")
COLORS = {"masked": "#d9d9d9", "partial": "#f4a582", "unmasked": "#4393c3"}


def save(fig, name):
    fig.savefig(os.path.join(OUT, name), metadata={"Date": None}, bbox_inches="tight")
    plt.close(fig)
    print("wrote", os.path.join(OUT, name))


# ---------------------------------------------------------------- roofline

# Figures: NVIDIA's H200 SXM specification (HBM3e 4.8 TB/s, 989 dense bf16 tensor TFLOP/s,
# 67 FP64 tensor TFLOP/s, 132 SMs); shared memory 128 bytes per clock per SM at 1.98 GHz
# (computed, not measured); the bf16 matmul rates of bench/results/*.json (678-771 TFLOP/s).
HBM, SMEM = 4.8, 132 * 128 * 1.98e9 / 1e12  # TB/s
BF16, FP64, MATMUL = 989.0, 67.0, (678.0, 771.0)


def roofline():
    fig, (ax0, ax) = plt.subplots(1, 2, figsize=(10.5, 4.2), gridspec_kw={"width_ratios": [1, 2]})
    ax0.set_axis_off()
    levels = [("HBM3e: 141 GB", f"{HBM} TB/s", "#fddbc7"),
              ("L2: 50 MB", "shared by all SMs", "#f7f7f7"),
              ("shared memory / L1: 228 KB per SM", f"~{SMEM:.0f} TB/s over 132 SMs", "#d1e5f0"),
              ("registers: 256 KB per SM", "operands of mma / wgmma", "#92c5de")]
    for k, (name, bw, col) in enumerate(levels):
        y = 3 - k
        w = 1.0 - 0.18 * k
        ax0.add_patch(Rectangle(((1 - w) / 2, y * 0.25 + 0.02), w, 0.21, color=col, ec="k"))
        ax0.text(0.5, y * 0.25 + 0.15, name, ha="center", va="center", fontsize=8.5)
        ax0.text(0.5, y * 0.25 + 0.07, bw, ha="center", va="center", fontsize=7.5)
    ax0.set_xlim(0, 1), ax0.set_ylim(0, 1.02)
    ax0.set_title("H200: where the operands live (per GPU)")

    x = np.logspace(-0.5, 4.5, 200)
    ax.loglog(x, np.minimum(HBM * x, BF16), "k-", lw=2, label=f"HBM roof: {HBM} TB/s x intensity")
    ax.loglog(x, np.minimum(SMEM * x, BF16), "b--", lw=1.2,
              label=f"shared-memory roof: ~{SMEM:.0f} TB/s x intensity")
    ax.axhline(BF16, color="k", lw=0.8)
    ax.text(0.4, BF16 * 1.08, f"{BF16:.0f} TFLOP/s dense bf16 (spec)", fontsize=8)
    ax.axhspan(*MATMUL, color="#fee08b", alpha=0.6)
    ax.text(400, MATMUL[0] * 0.8, "678-771: bf16 matmul\nmeasured (bench/results)",
            fontsize=7.5, va="top")
    ax.axhline(FP64, color="grey", lw=0.8, ls=":")
    ax.text(0.4, FP64 * 1.08, f"{FP64:.0f} TFLOP/s FP64 tensor (spec)", fontsize=8, color="grey")
    pts = [((1, HBM), (1.6, 2.0), "k", "one thread per query row, K, V from HBM:\n1 flop/byte"),
           ((128, min(HBM * 128, BF16)), (400, 25), "k",
            "128-row query block shares K, V\nthrough smem: 128 flop/byte of HBM"),
           ((16, SMEM * 16), (30, 8), "b", "a warp of 16 rows reads K, V\nfrom smem: 16 flop/byte"),
           ((64, min(SMEM * 64, BF16)), (400, 190), "b",
            "a warpgroup of 64 rows (wgmma):\n64 flop/byte of smem"),
           ((128, 437), (400, 70), "r", "forward_wgmma.cu, full mask:\n424-437 measured")]
    for (xi, yi), (tx, ty), c, txt in pts:
        ax.plot([xi], [yi], "*" if c == "r" else "o", color=c, ms=9 if c == "r" else 5)
        ax.annotate(txt, (xi, yi), xytext=(tx, ty), fontsize=7.5, color=c,
                    arrowprops={"arrowstyle": "->", "color": c, "lw": 0.7})
    ax.set_xlabel("arithmetic intensity: flops per byte read from that level")
    ax.set_ylabel("attainable TFLOP/s")
    ax.set_ylim(1, 2500)
    ax.set_title("Roofline (attention: 4 D flops per key per query row)")
    ax.legend(loc="lower right", fontsize=7.5)
    save(fig, "roofline.svg")


# ---------------------------------------------------------------- mma.sync fragments

def fragments():
    """tc.cuh's m16n8k16 layouts: g = lane / 4, t = lane % 4."""
    regs = ["#fbb4ae", "#b3cde3", "#ccebc5", "#decbe4"]
    fig, axes = plt.subplots(1, 3, figsize=(12, 5.2),
                             gridspec_kw={"width_ratios": [16, 8, 8]})

    def grid(ax, rows, cols, owner, title, xlabel, ylabel):
        for r in range(rows):
            for c in range(cols):
                lane, reg, name = owner(r, c)
                ax.add_patch(Rectangle((c, rows - 1 - r), 1, 1, color=regs[reg], ec="white"))
                ax.text(c + 0.5, rows - 0.5 - r, f"{lane}", ha="center", va="center",
                        fontsize=6.5)
        ax.set_xlim(0, cols), ax.set_ylim(0, rows), ax.set_aspect("equal")
        ax.set_xticks(np.arange(cols) + 0.5, [str(c) for c in range(cols)], fontsize=6)
        ax.set_yticks(np.arange(rows) + 0.5, [str(r) for r in range(rows)][::-1], fontsize=6)
        ax.set_title(title, fontsize=9), ax.set_xlabel(xlabel), ax.set_ylabel(ylabel)

    def a_owner(r, c):
        lane = (r % 8) * 4 + (c % 8) // 2
        reg = (1 if r >= 8 else 0) + (2 if c >= 8 else 0)
        return lane, reg, f"a{reg}"

    def b_owner(k, n):
        return n * 4 + (k % 8) // 2, 1 if k >= 8 else 0, ""

    def c_owner(r, c):
        return (r % 8) * 4 + c // 2, 2 if r >= 8 else 0, ""

    grid(axes[0], 16, 16, a_owner, "A (16 x 16, row-major): a0 a1 a2 a3 per lane\n"
         "a0 rows g, cols 2t..2t+1 | a1 rows g+8 | a2 cols 2t+8.. | a3 both", "k", "row m")
    grid(axes[1], 16, 8, b_owner, "B (16 x 8, k x n): b0 (k < 8), b1 (k >= 8)\n"
         "b0 = k 2t..2t+1, column g", "n", "k")
    grid(axes[2], 16, 8, c_owner, "C (16 x 8, float32): c0 c1 row g,\n"
         "c2 c3 row g+8, columns 2t, 2t+1", "n", "row m")
    fig.suptitle("mma.sync.m16n8k16: the number in a cell is the lane (0-31) holding it; "
                 "colour = register (g = lane / 4, t = lane % 4)", fontsize=10, y=1.05)
    save(fig, "mma-fragments.svg")


# ---------------------------------------------------------------- SW128

def sw128_offset(r, c, rows):
    """wgmma.cuh fm_sw128: byte offset of element (r, c) of an SW128 tile of `rows` rows."""
    return (c >> 6) * rows * 128 + r * 128 + ((((c & 63) >> 3) ^ (r & 7)) << 4) + (c & 7) * 2


def sw128():
    rows = 8
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    cmap = plt.get_cmap("tab10")
    for r in range(rows):
        for chunk in range(8):  # logical 16-byte chunk: columns 8 chunk .. 8 chunk + 7
            off = sw128_offset(r, chunk * 8, rows)
            slot = (off % 128) // 16
            assert off // 128 == r and slot == chunk ^ (r & 7)
            ax.add_patch(Rectangle((slot, rows - 1 - r), 1, 1, color=cmap(chunk), ec="white",
                                   alpha=0.85))
            ax.text(slot + 0.5, rows - 0.5 - r, f"c {8 * chunk}..{8 * chunk + 7}",
                    ha="center", va="center", fontsize=7)
    ax.set_xlim(0, 8), ax.set_ylim(0, rows)
    ax.set_xticks(np.arange(8) + 0.5, [f"bytes\n{16 * s}-{16 * s + 15}" for s in range(8)],
                  fontsize=7)
    ax.set_yticks(np.arange(rows) + 0.5, [f"row {r}" for r in range(rows)][::-1], fontsize=7)
    ax.set_title("SW128: row r of a 64-column block is 128 bytes; logical chunk k (columns 8k..8k+7)"
                 "\nis stored in slot k XOR (r mod 8). Rows 8..15 repeat the pattern (1024-byte "
                 "atom)", fontsize=9)
    save(fig, "sw128.svg")


# ---------------------------------------------------------------- pipeline

def producer_fills(ax, t, s, stage_free, engine, issue, load, color, label):
    """One stage filled in a producer / consumer timeline: the producer waits for empty[s] if it
    must, issues the copy at time t, and the copy engine moves `load` after its previous transfer.
    Returns the producer's next time and when the stage's bytes have landed (full[s])."""
    if stage_free[s] > t:  # empty[s] wait, parity phase ^ 1
        ax.plot([t, stage_free[s]], [3.0, 3.0], ":", color="grey")
        ax.text((t + stage_free[s]) / 2, 3.28, f"wait empty[{s}]", ha="center", fontsize=7)
        t = stage_free[s]
    ax.add_patch(Rectangle((t, 2.8), issue, 0.4, color=color, ec="k"))
    start = max(engine, t + issue)
    ax.add_patch(Rectangle((start, 1.75), load, 0.5, color=color, ec="k"))
    ax.text(start + load / 2, 2.0, label, ha="center", va="center", fontsize=7)
    return t + issue + 0.05, start + load


def first_in(ax, width, label):
    """What lands before any stage (Q of both warpgroups, or K and V of the block): a box on
    the copy engine's row from time 0."""
    ax.add_patch(Rectangle((0.0, 1.75), width, 0.5, color="#ffffb3", ec="k"))
    ax.text(width / 2, 2.0, label, ha="center", va="center", fontsize=7)


def full_arrow(ax, engine):
    """full[s] completes at `engine`: an arrow from the copy engine's row to the consumers'."""
    ax.add_patch(FancyArrowPatch((engine, 1.75), (engine, 1.27), arrowstyle="->",
                                 mutation_scale=8, color="k"))


def timeline_axes(ax, rows, end):
    """The rows of a producer / consumer timeline as y labels; time runs to `end`, unlabelled."""
    ax.set_yticks(list(rows.values()), list(rows.keys()))
    ax.set_xlim(0, end + 0.3), ax.set_ylim(-0.5, 3.6)
    ax.set_xticks([])


def pipeline():
    """A schematic of forward_wgmma.cu with NSTAGE = 4: durations are not measured."""
    fig, ax = plt.subplots(figsize=(13, 4.0))
    rows = {"producer warp 8: waits, issues": 3.0, "copy engine (TMA): bytes land": 2.0,
            "consumer warpgroup 0 (warps 0-3)": 1.0, "consumer warpgroup 1 (warps 4-7)": 0.0}
    stage_col = ["#66c2a5", "#fc8d62", "#8da0cb", "#e78ac3"]
    load, comp, issue = 0.9, 2.0, 0.12
    q_in = 1.0  # Q of both warpgroups (q_full[0], q_full[1]) lands first
    first_in(ax, q_in, "Q")
    cons_free = [q_in, q_in + 0.25]
    stage_free = [0.0] * 4   # all 8 consumer warps arrived on empty[s]
    engine = q_in            # the copy engine, one transfer after another
    t = 0.1                  # the producer's own time
    for kb in range(8):
        s = kb % 4
        t, engine = producer_fills(ax, t, s, stage_free, engine, issue, load, stage_col[s],
                                   f"kb{kb}>s{s}")  # full[s] completes at engine
        done = []
        for w, y in ((0, 1.0), (1, 0.0)):
            begin = max(cons_free[w], engine)
            ax.add_patch(Rectangle((begin, y - 0.25), comp, 0.5, color=stage_col[s], ec="k",
                                   alpha=0.65))
            ax.text(begin + comp / 2, y, f"kb{kb}", ha="center", va="center", fontsize=7)
            cons_free[w] = begin + comp
            done.append(begin + comp)
        full_arrow(ax, engine)
        stage_free[s] = max(done)
    timeline_axes(ax, rows, max(cons_free))
    ax.set_xlabel("time (schematic, not to scale). A consumer box: wait full[s] (parity phase), "
                  "S = Q K^T (wgmma), mask, online softmax, O += P V (wgmma), arrive on empty[s]."
                  "\nArrow: full[s] completes when the bytes announced by arrive.expect_tx have "
                  "landed. The two warpgroups share the tensor cores; nothing orders them "
                  "against each other.", fontsize=8)
    ax.set_title("forward_wgmma.cu: one producer warp, two consumer warpgroups, NSTAGE = 4 "
                 "stages of K, V and bounds (64 keys each)")
    save(fig, "pipeline.svg")


# ---------------------------------------------------------------- tile classes and the walk

def masked_reach(mm, causal, offset, r0, c0):
    """rules.h fm_masked_reach, restated."""
    causal_hi = c0 - offset if causal else 0
    reach = r0
    for _ in range(3):
        if 0 <= reach < causal_hi:
            reach = causal_hi
        if mm[1] <= reach < mm[2]:  # max LTS, min LTE
            reach = mm[2]
        if mm[5] <= reach < mm[6]:  # max UTS, min UTE
            reach = mm[6]
    return reach


def walk(mm, causal, offset, qb, bq, sq, c0, classes_col):
    """rules.h fm_next_live_qblock, restated: the blocks it classifies and where it jumps."""
    n = (sq - 1) // bq + 1
    visited = []
    while qb < n:
        visited.append(qb)
        if classes_col[qb] != 2:
            return qb, visited
        reach = masked_reach(mm, causal, offset, qb * bq, c0)
        qb = reach // bq if reach // bq > qb else qb + 1
    return n, visited


def tile_walk():
    import flashmask as fm

    S, B = 1024, 64
    m = fm.build("causal_document", 1, 1, S, doc_lens=[384, 256, 128, 256])
    cls = m.tile_classes(B, B)[0, 0]
    bounds = m.bounds[0, 0]
    nq, nk = cls.shape
    fig, ax = plt.subplots(figsize=(6.8, 6.8))
    names = {0: "unmasked", 1: "partial", 2: "masked"}
    for qb in range(nq):
        for kb in range(nk):
            ax.add_patch(Rectangle((kb, nq - 1 - qb), 1, 1, color=COLORS[names[cls[qb, kb]]],
                                   ec="white", lw=0.5))
    kb = 7  # one key block column: the dK/dV kernel's walk down it
    c0, c1 = kb * B, (kb + 1) * B
    col = bounds[c0:c1]
    lts, lte, uts, ute = col[:, 0], col[:, 1], col[:, 2], col[:, 3]
    sq = S
    lt_e, ut_e = lts == lte, uts == ute  # canonical empty intervals (masks/summary.c)
    lts_c, lte_c = np.where(lt_e, sq, lts), np.where(lt_e, sq, lte)
    uts_c, ute_c = np.where(ut_e, 0, uts), np.where(ut_e, 0, ute)
    mm = [lts_c.min(), lts_c.max(), lte_c.min(), lte_c.max(),
          uts_c.min(), uts_c.max(), ute_c.min(), ute_c.max()]
    qb, steps, live = 0, [], []
    while qb < nq:
        qb, visited = walk(mm, True, 0, qb, B, sq, c0, cls[:, kb])
        steps.append(visited)
        if qb < nq:
            live.append(qb)
            qb += 1
    assert live == [q for q in range(nq) if cls[q, kb] != 2], "walk != masks/ tile classes"
    classified = [q for v in steps for q in v]
    for q in classified:
        ax.plot(kb + 0.5, nq - 0.5 - q, "ko", ms=4)
    for v in steps:
        for a, b in zip(v, v[1:]):
            if b > a + 1:
                ax.add_patch(FancyArrowPatch((kb + 0.8, nq - 0.5 - a), (kb + 0.8, nq - 0.5 - b),
                                             connectionstyle="arc3,rad=-0.4", arrowstyle="->",
                                             mutation_scale=9, color="k"))
    ax.set_xlim(0, nk), ax.set_ylim(0, nq), ax.set_aspect("equal")
    ax.set_xticks(np.arange(nk) + 0.5, [str(k) for k in range(nk)], fontsize=6)
    ax.set_yticks(np.arange(nq) + 0.5, [str(q) for q in range(nq)][::-1], fontsize=6)
    ax.set_xlabel("key block (64 keys)"), ax.set_ylabel("query block (64 rows)")
    handles = [Rectangle((0, 0), 1, 1, color=COLORS[k]) for k in ("masked", "partial",
                                                                   "unmasked")]
    ax.legend(handles, ["masked: never loaded", "partial: element tests",
                        "unmasked: no tests"], loc="upper right", fontsize=7)
    ax.set_title(f"causal_document (384, 256, 128, 256), S = {S}: tile classes (masks/)\n"
                 f"key block {kb}: the dK/dV walk classifies {len(classified)} of {nq} query "
                 f"blocks (dots),\njumping over masked runs (arrows) to its {len(live)} live "
                 "ones", fontsize=8.5)
    save(fig, "tile-walk.svg")
    return len(classified), nq, len(live)


def wide_stages():
    """One 128-row query block of forward_wide.cu: each warpgroup's tile classes along the keys
    (masks/), and the live blocks taken two at a time into 128-key stages (live_pairs)."""
    import flashmask as fm

    S, B, r0 = 2048, 64, 768
    m = fm.build("causal_document", 1, 1, S, doc_lens=[448, 704, 896])
    cls = m.tile_classes(B, B)[0, 0]
    wg = [cls[r0 // B], cls[r0 // B + 1]]  # warpgroup 0's 64 rows, warpgroup 1's
    nk = len(wg[0])
    live = [k for k in range(nk) if wg[0][k] != 2 or wg[1][k] != 2]
    stages = [live[i:i + 2] for i in range(0, len(live), 2)]
    k0, k1 = max(0, live[0] - 3), min(nk, live[-1] + 4)  # the blocks drawn
    names = {0: "unmasked", 1: "partial", 2: "masked"}
    fig, ax = plt.subplots(figsize=(7.5, 3.4))
    for w in range(2):
        for k in range(k0, k1):
            ax.add_patch(Rectangle((k, 1 - w), 1, 1, color=COLORS[names[wg[w][k]]], ec="white",
                                   lw=0.8))
    for i, st in enumerate(stages):
        x0, x1 = st[0], st[-1] + 1
        ax.plot([x0 + 0.1, x0 + 0.1, x1 - 0.1, x1 - 0.1], [-0.15, -0.35, -0.35, -0.15], "k-",
                lw=0.8)
        slots = " + ".join(str(k) for k in st) + ("" if len(st) == 2 else "\n+ absent")
        ax.text((x0 + x1) / 2, -0.5, f"stage {i}\n{slots}", ha="center", va="top", fontsize=7)
    for k in live:
        for w in range(2):
            if wg[w][k] == 2:  # live for the other warpgroup only: S = -inf, V of the other slot
                ax.text(k + 0.5, 1.5 - w, "P = 0", ha="center", va="center", fontsize=6)
    ax.set_xlim(k0, k1), ax.set_ylim(-1.6, 2), ax.set_aspect("equal")
    ax.set_xticks(np.arange(k0, k1) + 0.5, [str(k) for k in range(k0, k1)], fontsize=7)
    ax.set_yticks([1.5, 0.5], [f"warpgroup 0: rows {r0}-{r0 + 63}",
                               f"warpgroup 1: rows {r0 + 64}-{r0 + 127}"], fontsize=7)
    ax.set_xlabel("key block (64 keys)")
    for side in ("top", "right", "left", "bottom"):
        ax.spines[side].set_visible(False)
    ax.tick_params(length=0)
    handles = [Rectangle((0, 0), 1, 1, color=COLORS[k]) for k in ("masked", "partial",
                                                                   "unmasked")]
    ax.legend(handles, ["masked: never loaded", "partial: element tests", "unmasked"],
              loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7, frameon=False)
    ax.set_title(f"causal_document (448, 704, 896), S = {S}: the {len(live)} key blocks live "
                 f"for rows {r0}-{r0 + 127}\nfill {len(stages)} stages of two; block "
                 f"{live[-1]} (live for warpgroup 1 only) shares its stage with an absent slot",
                 fontsize=8)
    save(fig, "wide-stages.svg")
    return live, stages


def pipelined_backward():
    """A schematic of backward_pipelined.cu at D = 128 (2 stages): durations are not measured."""
    fig, ax = plt.subplots(figsize=(13, 4.3))
    rows = {"producer warp: waits, issues": 3.0, "copy engine (TMA): Q, dO, LSE, Delta land": 2.0,
            "consumer warpgroup 0 (keys 0-63)": 1.0, "consumer warpgroup 1 (keys 64-127)": 0.0}
    stage_col = ["#66c2a5", "#fc8d62"]
    steps = [("S, dP", 0.55), ("P, dV", 0.45), ("dS, dK", 0.5), ("dQ", 0.5), ("add", 0.25)]
    load, issue = 0.7, 0.12
    kv_in = 1.0  # K and V of the block's 128 keys land first (kv_full)
    first_in(ax, kv_in, "K, V")
    cons_free = [kv_in, kv_in + 0.1]
    stage_free = [0.0, 0.0]  # all 8 consumer warps arrived on empty[s]
    engine, t = kv_in, 0.1
    for qb in range(5):
        s = qb % 2
        t, engine = producer_fills(ax, t, s, stage_free, engine, issue, load, stage_col[s],
                                   f"qb{qb}>s{s}")
        # each warpgroup: S^T and dP^T .. dK on its own, then the named barrier (both dS^T in),
        # then its half of dQ = dS K and the bulk reduction of that half
        begin = [max(cons_free[w], engine) for w in range(2)]
        mid = []
        for w, y in ((0, 1.0), (1, 0.0)):
            x = begin[w]
            for name, d in steps[:3]:
                ax.add_patch(Rectangle((x, y - 0.25), d, 0.5, color=stage_col[s], ec="k",
                                       alpha=0.65))
                ax.text(x + d / 2, y, name, ha="center", va="center", fontsize=6)
                x += d
            mid.append(x)
        bar = max(mid)  # named barrier 1: 256 consumer threads
        ax.plot([bar, bar], [-0.3, 1.3], "k--", lw=0.8)
        for w, y in ((0, 1.0), (1, 0.0)):
            x = bar
            for name, d in steps[3:]:
                ax.add_patch(Rectangle((x, y - 0.25), d, 0.5, color="white", ec="k"))
                ax.text(x + d / 2, y, name, ha="center", va="center", fontsize=6)
                x += d
            cons_free[w] = x
        # the stage is released once the dV and dK products are done (wgmma wait_group 1),
        # while dQ still runs: empty[s] completes about the barrier
        stage_free[s] = bar + 0.1
        full_arrow(ax, engine)
    timeline_axes(ax, rows, max(cons_free))
    ax.set_xlabel("time (schematic, not to scale). Coloured: a warpgroup's products on its own 64 "
                  "keys (S^T = K Q^T and dP^T = V dO^T; P^T, dV += P^T dO; dS^T, dK += dS^T Q)."
                  "\nDashed: the one named barrier per query block (both halves of dS^T in shared "
                  "memory). White: dQ = dS K for the warpgroup's half of the columns\nover all 128 "
                  "keys, then its bulk reduction into the float32 dQ. The stage goes back to the "
                  "producer (empty[s]) as soon as dV and dK are done,\nwhile dQ still runs; dS^T "
                  "is double-buffered, so no other barrier is needed.", fontsize=8)
    ax.set_title("backward_pipelined.cu: one producer warp, two consumer warpgroups, 2 stages of "
                 "Q, dO, LSE and Delta (64 query rows each), K and V resident")
    save(fig, "pipelined-backward.svg")


if __name__ == "__main__":
    roofline()
    fragments()
    sw128()
    pipeline()
    print("walk (classified, blocks, live):", tile_walk())
    print("wide stages (live, stages):", wide_stages())
    pipelined_backward()
