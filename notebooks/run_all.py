#!/usr/bin/python3
"""notebooks/run_all.py — executes the teaching notebooks with nbclient on Debian's Python 3
kernel (/usr/bin/python3 -m ipykernel_launcher) against a built libflashmask; any cell error
fails the run (exit 1).

    # refresh the committed outputs (authors), from the repository root:
    /usr/bin/python3 notebooks/run_all.py --lib build/libflashmask.so --exe build/tools/flashmask
    # CI (tests/notebooks/meson.build): execute copies in a temporary directory, tree untouched
    /usr/bin/python3 notebooks/run_all.py --copy --lib ... --exe ...
    # after `pip install .` (no --lib, no FLASHMASK_LIB): the installed package, on the kernel
    # interpreter given by --python (a venv's python, say)
    venv/bin/python notebooks/run_all.py --copy --python venv/bin/python

The kernel is pinned: a kernelspec named python3 whose argv[0] is /usr/bin/python3 (or --python)
is written to a private temporary Jupyter data directory (JUPYTER_PATH, JUPYTER_DATA_DIR), so a
user's or pyenv's own python3 kernelspec cannot be picked up. With --lib (or FLASHMASK_LIB) the
kernels inherit FLASHMASK_LIB, FLASHMASK_EXE and PYTHONPATH (this repository's python/); without,
they import the installed flashmask package, which finds its own library and CLI.
Layer: notebooks (teaching material).
"""

import argparse
import glob
import json
import os
import shutil
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
DEBIAN_PYTHON = "/usr/bin/python3"


def pin_kernel(jupyter_dir, python=DEBIAN_PYTHON):
    """Writes the python3 kernelspec (Debian's interpreter or `python`) and points Jupyter at it
    only."""
    spec_dir = os.path.join(jupyter_dir, "kernels", "python3")
    os.makedirs(spec_dir)
    with open(os.path.join(spec_dir, "kernel.json"), "w") as f:
        json.dump({"argv": [python, "-Xfrozen_modules=off", "-m", "ipykernel_launcher", "-f",
                            "{connection_file}"],
                   "display_name": "Python 3 (Debian /usr/bin/python3)",
                   "language": "python"}, f)
    os.environ["JUPYTER_PATH"] = jupyter_dir
    os.environ["JUPYTER_DATA_DIR"] = jupyter_dir
    os.environ["JUPYTER_RUNTIME_DIR"] = os.path.join(jupyter_dir, "runtime")
    from jupyter_client.kernelspec import KernelSpecManager
    argv = KernelSpecManager().get_kernel_spec("python3").argv
    if argv[0] != python:
        sys.exit(f"run_all: kernel python3 resolves to {argv[0]}, not {python}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("notebooks", nargs="*", help="default: notebooks/[0-9]*.ipynb")
    ap.add_argument("--lib", help="libflashmask.so (default: $FLASHMASK_LIB; neither: the "
                                  "installed flashmask package)")
    ap.add_argument("--exe", help="the flashmask CLI (default: $FLASHMASK_EXE; neither: the one "
                                  "flashmask.cli_path() finds)")
    ap.add_argument("--python", default=DEBIAN_PYTHON,
                    help="the kernel's interpreter (default: %(default)s)")
    ap.add_argument("--copy", action="store_true",
                    help="execute copies in a temporary directory; leave the notebooks as they are")
    ap.add_argument("--timeout", type=int, default=600, help="seconds per cell")
    ap.add_argument("--require-outputs", action="store_true",
                    help="fail if a notebook as given has a code cell that was never executed "
                         "(the notebooks are committed with their outputs)")
    args = ap.parse_args()

    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    lib = args.lib or os.environ.get("FLASHMASK_LIB")
    exe = args.exe or os.environ.get("FLASHMASK_EXE")
    if lib:  # a build of this checkout: its library, CLI and python/
        if not os.path.exists(lib):
            sys.exit(f"run_all: libflashmask.so not found ({lib!r})")
        if not exe or not os.path.exists(exe):
            sys.exit(f"run_all: flashmask CLI not found ({exe!r}); give --exe or FLASHMASK_EXE")
        os.environ["FLASHMASK_LIB"] = os.path.abspath(lib)
        os.environ["FLASHMASK_EXE"] = os.path.abspath(exe)
        os.environ["PYTHONPATH"] = os.pathsep.join(
            [os.path.join(REPO, "python")] + [p for p in [os.environ.get("PYTHONPATH")] if p])
    elif exe:
        os.environ["FLASHMASK_EXE"] = os.path.abspath(exe)
    os.environ["PYTHONDONTWRITEBYTECODE"] = "1"
    os.environ["PYDEVD_DISABLE_FILE_VALIDATION"] = "1"  # quiet the kernel debugger
    os.environ.setdefault("MPLBACKEND", "module://matplotlib_inline.backend_inline")

    paths = args.notebooks or sorted(glob.glob(os.path.join(HERE, "[0-9]*.ipynb")))
    if not paths:
        sys.exit("run_all: no notebooks found")
    failed = []
    with tempfile.TemporaryDirectory(prefix="fm-notebooks-") as tmp:
        pin_kernel(os.path.join(tmp, "jupyter"), args.python)
        for path in paths:
            target = path
            if args.copy:
                target = os.path.join(tmp, os.path.basename(path))
                shutil.copyfile(path, target)
            nb = nbformat.read(target, as_version=4)
            unrun = [i for i, c in enumerate(nb.cells)
                     if c.cell_type == "code" and c.execution_count is None]
            if args.require_outputs and unrun:
                print(f"FAILED {os.path.basename(path)}: code cells {unrun} were committed "
                      "without outputs (run notebooks/run_all.py and commit)", file=sys.stderr)
                failed.append(path)
                continue
            # record_timing=False: no per-cell timestamps, so re-running changes only outputs
            client = NotebookClient(nb, timeout=args.timeout, kernel_name="python3",
                                    record_timing=False,
                                    resources={"metadata": {"path": os.path.dirname(target)}})
            start = time.monotonic()
            try:
                client.execute()
                status = "ok"
            except CellExecutionError as e:
                status = "FAILED"
                failed.append(path)
                print(str(e)[-3000:], file=sys.stderr)
            took = time.monotonic() - start
            print(f"{status:6} {took:6.1f} s  {os.path.basename(path)}", flush=True)
            if status == "ok":
                nbformat.validate(nb)
                nbformat.write(nb, target)
    if failed:
        print(f"run_all: {len(failed)} notebook(s) failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
