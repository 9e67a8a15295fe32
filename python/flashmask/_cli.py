"""flashmask._cli — the `flashmask` console script of an installed package (pyproject.toml):
runs the C command-line tool that the wheel carries in flashmask/bin/ (or the one
flashmask.cli_path() finds) with the same arguments and exit status. Layer: python."""

import os
import sys


def main():
    from . import cli_path
    exe = cli_path()
    if not exe:
        sys.exit("flashmask: the CLI was not built with this package")
    os.execv(exe, [exe] + sys.argv[1:])


if __name__ == "__main__":
    main()
