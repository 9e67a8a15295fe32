#!/usr/bin/python3
"""tests/cli/third_party_case.py — what a third party does with NumPy alone, used by
cli_e2e.sh: `write DIR` writes a case directory by hand (docs/spec.md §6: float32 inputs, GQA 4:2, two
mask heads, Sq != Sk, and mask.npy in Paddle's compact [B, Hm, Sk, 2] form with causal = none,
i.e. columns LTS and UTE); `compare CASE RESULTS` recomputes attention densely in NumPy from
the Paddle semantics and compares it with `flashmask run --impl reference`'s out.npy and lse.npy.
An independent check of the file conventions: C order, head mapping, mask columns, -inf rows."""
import json
import os
import sys

import numpy as np

B, HQ, HK, HM, SQ, SK, D = 2, 4, 2, 2, 5, 7, 3


def write(d):
    os.makedirs(d)
    rng = np.random.default_rng(5)
    case = {"format": "flashmask-case", "version": 1, "batch": B, "q_heads": HQ,
            "kv_heads": HK, "mask_heads": HM, "seqlen_q": SQ, "seqlen_k": SK, "head_dim": D,
            "scale": 0.7, "causal": "none", "dtype": "float32", "mask_kind": "custom",
            "mask_params": {"made_by": "third_party_case.py"}, "seed": 0}
    with open(os.path.join(d, "case.json"), "w") as f:
        json.dump(case, f)
    for name, h, s in (("q", HQ, SQ), ("k", HK, SK), ("v", HK, SK), ("do", HQ, SQ)):
        np.save(os.path.join(d, name + ".npy"),
                rng.standard_normal((B, h, s, D)).astype(np.float32))
    # Paddle, causal=False, C=2: row i is masked from key j iff i >= LTS_j or i < UTE_j
    lts = rng.integers(0, SQ + 1, size=(B, HM, SK))
    ute = np.minimum(rng.integers(0, SQ + 1, size=(B, HM, SK)), lts)
    lts[0, 0, :] = 0  # batch 0, mask head 0: every key masked -> fully masked rows
    mask = np.stack([lts, ute], axis=-1).astype(np.int32)
    np.save(os.path.join(d, "mask.npy"), mask)


def compare(case_dir, res_dir):
    load = lambda d, n: np.load(os.path.join(d, n + ".npy")).astype(np.float64)
    q, k, v = load(case_dir, "q"), load(case_dir, "k"), load(case_dir, "v")
    mask = np.load(os.path.join(case_dir, "mask.npy"))
    out = np.zeros((B, HQ, SQ, D))
    lse = np.full((B, HQ, SQ), -np.inf)
    rows = np.arange(SQ)[:, None]
    for b in range(B):
        for h in range(HQ):
            kh, mh = h // (HQ // HK), h // (HQ // HM)
            lts, ute = mask[b, mh, :, 0][None, :], mask[b, mh, :, 1][None, :]
            allowed = ~((rows >= lts) | (rows < ute))
            s = 0.7 * q[b, h] @ k[b, kh].T
            for i in range(SQ):
                if allowed[i].any():
                    m = s[i][allowed[i]].max()
                    p = np.where(allowed[i], np.exp(s[i] - m), 0.0)
                    lse[b, h, i] = m + np.log(p.sum())
                    out[b, h, i] = (p / p.sum()) @ v[b, kh]
    got_out, got_lse = load(res_dir, "out"), load(res_dir, "lse")
    assert np.array_equal(np.isinf(lse), np.isinf(got_lse)), "fully masked rows differ"
    assert np.isinf(lse).any(), "the case should have fully masked rows"
    fin = np.isfinite(lse)
    err = max(np.abs(got_out - out).max(), np.abs(got_lse[fin] - lse[fin]).max())
    print(f"max abs difference from NumPy: {err:.3g}")
    assert err < 1e-12, err


if __name__ == "__main__":
    {"write": write, "compare": compare}[sys.argv[1]](*sys.argv[2:])
