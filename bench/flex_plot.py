#!/usr/bin/python3
"""bench/flex_plot.py — a picture of one bench/flex_bench.py run: per mask family, our TFLOP/s
beside FlexAttention's at its best (forward and backward, one panel each, one group of bars per
configuration), with our ratio to Flex written over each pair and, where the run has them,
cuDNN and FlashAttention-2 as dashes on the families they ran (full, causal).

    /usr/bin/python3 bench/flex_plot.py RESULTS.json [OUT.svg]   (default: RESULTS with .svg)

Only the JSON is read (nothing is timed here). Layer: bench (reporting).
"""

import json
import os
import sys

import matplotlib

matplotlib.use("svg")
import matplotlib.pyplot as plt  # noqa: E402

plt.rcParams.update({"svg.fonttype": "none", "svg.hashsalt": "libflashmask", "font.size": 8})


def draw(results, title, path):
    configs = sorted({(r["heads"], r["kv_heads"], r["seqlen"], r["head_dim"]) for r in results},
                     key=lambda c: (c[3], c[2], c[0]))
    passes = [p for p in ("fwd", "bwd") if any(f"ours_{p}_tflops" in r for r in results)]
    fig, axes = plt.subplots(len(configs) * len(passes), 1, squeeze=False,
                             figsize=(9, 2.6 * len(configs) * len(passes)))
    row = 0
    for cfg in configs:
        rows = [r for r in results if (r["heads"], r["kv_heads"], r["seqlen"], r["head_dim"]) == cfg]
        for p in passes:
            ax = axes[row][0]
            row += 1
            names = [r["family"] for r in rows]
            ours = [r.get(f"ours_{p}_tflops", 0.0) for r in rows]
            flex = [r.get(f"flex_{p}_tflops", 0.0) for r in rows]
            x = range(len(rows))
            ax.bar([i - 0.2 for i in x], ours, 0.4, label="libflashmask", color="#2166ac")
            ax.bar([i + 0.2 for i in x], flex, 0.4, label="FlexAttention (best form)",
                   color="#b2182b")
            for i, r in enumerate(rows):
                ratio = r.get(f"ratio_{p}")
                if ratio:
                    ax.text(i, max(ours[i], flex[i]) * 1.02, f"{ratio:.2f}x", ha="center",
                            fontsize=7)
                for peer, style in (("cudnn", "k-"), ("fa2", "k:")):
                    v = r.get(f"{peer}_{p}_tflops")
                    if v:
                        ax.plot([i - 0.4, i + 0.4], [v, v], style, lw=1)
            hq, hk, s, d = cfg
            heads = f"{hq}" if hq == hk else f"{hq}:{hk}"
            ax.set_title(f"{'forward' if p == 'fwd' else 'backward'}, H = {heads}, S = {s}, "
                         f"D = {d} (ratio: ours / Flex; dashes: cuDNN solid, FA-2 dotted)",
                         fontsize=8)
            ax.set_ylabel("TFLOP/s (allowed pairs)")
            ax.set_xticks(list(x))
            ax.set_xticklabels(names, rotation=30, ha="right")
            peers = [r.get(f"{q}_{p}_tflops", 0.0) for r in rows for q in ("cudnn", "fa2")]
            ax.set_ylim(0, max(ours + flex + peers + [1.0]) * 1.35)
            ax.legend(loc="upper left", fontsize=7, ncol=2, frameon=False)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, metadata={"Date": None})
    plt.close(fig)


def main():
    if len(sys.argv) < 2:
        sys.exit("usage: flex_plot.py RESULTS.json [OUT.svg]")
    src = sys.argv[1]
    out = sys.argv[2] if len(sys.argv) > 2 else os.path.splitext(src)[0] + ".svg"
    with open(src) as f:
        d = json.load(f)
    results = [r for r in d["results"] if "ours_fwd_tflops" in r]
    if not results:
        sys.exit(f"flex_plot.py: {src} holds no result rows")
    title = f"{d.get('device', '?')}, {d.get('date', '?')[:16]} UTC, {d.get('dtype', '')}"
    draw(results, title, out)
    print(out)


if __name__ == "__main__":
    main()
