#!/usr/bin/python3
# tests/cli/make_fixtures.py — writes tests/cli/data/*.npy with NumPy itself, so that the C
# reader (io/npy.c) is tested against files NumPy produced, not only against its own writer.
# The outputs are committed; rerun only to change them: /usr/bin/python3 make_fixtures.py
import os

import numpy as np

here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
os.makedirs(here, exist_ok=True)


def path(name):
    return os.path.join(here, name)


np.save(path("f2.npy"), (np.arange(6) * 0.5).astype(np.float16).reshape(2, 3))
np.save(path("b1.npy"), np.array([True, False, True]))
with open(path("v2_i4.npy"), "wb") as f:
    np.lib.format.write_array(f, np.arange(6, dtype="<i4").reshape(2, 3), version=(2, 0))
np.save(path("scalar.npy"), np.float64(3.5))
np.save(path("empty.npy"), np.zeros((0, 3)))
np.save(path("u1.npy"), np.arange(5, dtype=np.uint8))
# refused: Fortran order, big-endian, complex, int64
np.save(path("fortran.npy"), np.asfortranarray(np.arange(6.0).reshape(2, 3)))
np.save(path("big_endian.npy"), np.arange(6.0).astype(">f8"))
np.save(path("complex.npy"), np.arange(3) * (1 + 1j))
np.save(path("i8.npy"), np.arange(3, dtype="<i8"))
