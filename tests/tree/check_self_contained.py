#!/usr/bin/env python3
"""tests/tree/check_self_contained.py — suite 'tree': the repository stands on its own.

Fails when any tracked text file cites a document outside the repository (the old design brief,
a path into the shared folder beside the checkout) or a tracker's issue number: a reader of a
clone cannot follow such a reference. The specification the code cites is docs/spec.md; cite it as "docs/spec.md §N"
in code and as a relative link to its section anchor in markdown.

Usage: check_self_contained.py SOURCE_ROOT   (files: `git ls-files` there, else every file below
it except build directories). Exit 0 clean, 1 with one line per offending place."""
import os
import re
import subprocess
import sys

# Written in pieces so that this file does not match itself.
PATTERNS = [
    (re.compile("BRI" + "EF"), "cites the design brief outside the repo: cite docs/spec.md §N"),
    (re.compile(r"\.\./" + "shared"), "points outside the repository (the shared folder)"),
    (re.compile(r"\b[Ii]ssues? #?[0-9]+\b"),
     "cites an issue number: say what the issue was instead"),
]


def tracked_files(root):
    try:
        out = subprocess.run(["git", "-C", root, "ls-files", "-z"], capture_output=True,
                             check=True).stdout.decode()
        return [f for f in out.split("\0") if f]
    except (OSError, subprocess.CalledProcessError):
        files = []
        for d, dirs, names in os.walk(root):
            dirs[:] = [x for x in dirs if not x.startswith(("build", ".git", "subprojects"))]
            files += [os.path.relpath(os.path.join(d, n), root) for n in names]
        return files


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else "."
    bad = 0
    for rel in sorted(tracked_files(root)):
        path = os.path.join(root, rel)
        if not os.path.isfile(path) or os.path.islink(path):
            continue
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except (UnicodeDecodeError, OSError):
            continue  # binary files (images, .npy fixtures) cite nothing
        for n, line in enumerate(text.split("\n"), 1):
            for pat, why in PATTERNS:
                m = pat.search(line)
                if m:
                    print(f"{rel}:{n}: '{m.group(0)}' {why}")
                    bad += 1
    if bad:
        print(f"{bad} reference(s) outside the repository", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
