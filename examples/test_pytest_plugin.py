"""examples/test_pytest_plugin.py — a kernel author's pytest file using flashmask.testing:
every case of the @pytest.mark.flashmask marker is generated in-process and the candidate is
judged by the pass rule (docs/spec.md §5); a failing case prints how to rebuild it and the
oracle's table. The "kernel" here is the library's own float32 cpu layer through
flashmask.torch (torch tensors in [B, S, H, D]); FM_EXAMPLE_BUG=scale plants a wrong softmax
scale so the failure report can be seen.

    pytest -p flashmask.testing examples/test_pytest_plugin.py     # a checkout (PYTHONPATH=python)
    pytest examples/test_pytest_plugin.py                          # after pip install .

tests/python/test_testing.py runs this file both ways (correct: passes; planted bug: fails).
Layer: examples.
"""

import math
import os

import pytest

torch = pytest.importorskip("torch")
from flashmask.torch import attention  # noqa: E402

BUG = os.environ.get("FM_EXAMPLE_BUG", "")


def my_kernel(q, k, v, dout, mask):
    """Forward and backward of a candidate on [B, S, H, D] float32 torch tensors."""
    q, k, v = (x.detach().requires_grad_() for x in (q, k, v))
    scale = 1.0 / math.sqrt(q.shape[-1]) * (1.01 if BUG == "scale" else 1.0)
    out, lse = attention(q, k, v, mask, layout="bshd", scale=scale, impl="cpu", return_lse=True)
    out.backward(dout)
    return out, lse, q.grad, k.grad, v.grad


def to_torch(a):
    return torch.tensor(a, dtype=torch.float32)


@pytest.mark.flashmask(families=["causal", "causal_document", "sliding_window"],
                       dtypes=["float32"], seeds=[0, 1], seqlen=96, head_dim=32)
def test_my_kernel(flashmask_case, flashmask_judge):
    flashmask_judge(my_kernel, flashmask_case, layout="bshd", to=to_torch)
