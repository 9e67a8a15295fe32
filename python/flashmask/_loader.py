"""flashmask._loader — where libflashmask.so and the flashmask CLI are, for the ctypes binding
(_lib.py) and for callers that run the CLI (flashmask.cli_path()).

Searched in this order (the first that exists wins):
  1. $FLASHMASK_LIB (a path to the .so or to a directory holding it) / $FLASHMASK_EXE;
  2. the installed copy, when this package was installed by `pip install .` (meson-python: the
     library sits in the package, the CLI in its bin/) or by `meson install` (the absolute paths
     written into the generated flashmask/_installed.py at build time);
  3. in a source checkout (no _installed.py): the newest build*/libflashmask.so of the repository
     holding this package, and the tools/flashmask beside it;
  4. the system's dynamic linker path (ctypes.util.find_library) / `flashmask` on PATH.

Layer: python, under _lib.py; imports nothing from the package but the generated _installed.
"""

import ctypes.util
import glob
import os
import shutil

HERE = os.path.dirname(os.path.abspath(__file__))

try:
    from . import _installed
except ImportError:  # a source checkout
    _installed = None


def _env_path(var, filename):
    value = os.environ.get(var)
    if not value:
        return None
    path = os.path.join(value, filename) if os.path.isdir(value) else value
    if not os.path.exists(path) and filename.startswith("libflashmask"):
        # a build directory holds the versioned library (libflashmask.so.0...), and a path
        # to the plain name may mean it
        path = _build_library(os.path.dirname(path) if not os.path.isdir(value) else value) \
            or path
    if not os.path.exists(path):
        raise OSError(f"{var}={value}: no {filename} there")
    return path


def _build_library(build):
    """libflashmask.so in a build directory, else its versioned file (libflashmask.so.0...)."""
    plain = os.path.join(build, "libflashmask.so")
    if os.path.exists(plain):
        return plain
    versioned = sorted(p for p in glob.glob(plain + ".[0-9]*") if os.path.isfile(p))
    return versioned[-1] if versioned else None


def _repo_builds():
    """build*/ directories of the source checkout holding this package that hold a library,
    newest library first."""
    repo = os.path.dirname(os.path.dirname(HERE))
    builds = [b for b in glob.glob(os.path.join(repo, "build*")) if _build_library(b)]
    return sorted(builds, key=lambda b: os.path.getmtime(_build_library(b)), reverse=True)


def find_library():
    """The path of the libflashmask shared library to load (see the module docstring)."""
    path = _env_path("FLASHMASK_LIB", "libflashmask.so")
    if path:
        return path
    if _installed is not None:
        path = _installed.LIB or os.path.join(HERE, "libflashmask.so")
        if os.path.exists(path):
            return path
    builds = _repo_builds()
    if builds:
        return _build_library(builds[0])
    system = ctypes.util.find_library("flashmask")
    if system:
        return system
    raise OSError("libflashmask.so not found: install the package (pip install .), build it "
                  "(meson setup build && meson compile -C build) or set FLASHMASK_LIB to its path")


def cli_path(lib_path=None):
    """The path of the flashmask CLI matching the loaded library, or None if there is none."""
    path = _env_path("FLASHMASK_EXE", "flashmask")
    if path:
        return path
    candidates = []
    if _installed is not None:
        candidates.append(_installed.EXE or os.path.join(HERE, "bin", "flashmask"))
    if lib_path:
        candidates.append(os.path.join(os.path.dirname(os.path.abspath(lib_path)), "tools",
                                       "flashmask"))
    candidates += [os.path.join(b, "tools", "flashmask") for b in _repo_builds()]
    for c in candidates:
        if os.path.exists(c):
            return c
    return shutil.which("flashmask")
