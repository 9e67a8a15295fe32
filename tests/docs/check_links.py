#!/usr/bin/python3
"""tests/docs/check_links.py — no dead links in the documentation: every relative link of the
Markdown pages (docs/, README.md and every other tracked *.md) and of the notebooks' Markdown
cells must name a file or directory that exists, and a `#anchor` must name a heading of the
target page (GitHub's anchor rule: lower case, punctuation dropped, spaces to hyphens, -1, -2
for repeats). Links inside code spans and fenced code blocks are not links. External links
(http:, https:, mailto:) are not fetched.

    /usr/bin/python3 tests/docs/check_links.py ROOT          # exit 1 and one line per dead link
    /usr/bin/python3 tests/docs/check_links.py --self-test   # plants dead links; must catch them

Registered by tests/docs/meson.build as the `docs` suite (both forms).
Layer: tests (documentation).
"""

import json
import os
import re
import sys
import tempfile

SKIP_DIRS = {".git", "subprojects", "node_modules", "__pycache__"}
LINK = re.compile(r"(!?)\[((?:[^\[\]]|\[[^\]]*\])*)\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
FENCE = re.compile(r"^\s*(```|~~~)")
HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$")


def markdown_of(path):
    """The Markdown text of a page, or of a notebook's Markdown cells joined."""
    with open(path, encoding="utf-8") as f:
        if path.endswith(".ipynb"):
            nb = json.load(f)
            cells = [c for c in nb.get("cells", []) if c.get("cell_type") == "markdown"]
            return "\n\n".join("".join(c.get("source", [])) for c in cells)
        return f.read()


def prose_lines(text):
    """Lines outside fenced code blocks, with code spans blanked, numbered from 1."""
    fenced = False
    for n, line in enumerate(text.split("\n"), 1):
        if FENCE.match(line):
            fenced = not fenced
            continue
        if fenced:
            continue
        yield n, re.sub(r"(`+)(.+?)\1", lambda m: " " * len(m.group(0)), line)


def slug(heading):
    """GitHub's anchor of a heading."""
    text = re.sub(r"`|\*\*|__", "", heading)
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)  # a link in a heading: its text
    text = text.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path, cache):
    if path not in cache:
        seen, out = {}, set()
        fenced = False
        for line in markdown_of(path).split("\n"):
            if FENCE.match(line):
                fenced = not fenced
                continue
            m = None if fenced else HEADING.match(line)
            if m:
                s = slug(m.group(2))
                k = seen.get(s, 0)
                seen[s] = k + 1
                out.add(s if k == 0 else f"{s}-{k}")
        for m in re.finditer(r"<a\s+(?:name|id)=\"([^\"]+)\"", markdown_of(path)):
            out.add(m.group(1))
        cache[path] = out
    return cache[path]


def pages(root):
    for d, dirs, files in os.walk(root):
        dirs[:] = sorted(x for x in dirs if x not in SKIP_DIRS and not x.startswith(".")
                         and not x.startswith("build")
                         and not os.path.exists(os.path.join(d, x, "meson-private")))
        for f in sorted(files):
            if f.endswith(".md") or (f.endswith(".ipynb") and os.path.basename(d) == "notebooks"):
                yield os.path.join(d, f)


def check(root):
    """Dead links under root, as 'page:line: target: why' strings."""
    dead, cache, n_links = [], {}, 0
    for page in pages(root):
        rel_page = os.path.relpath(page, root)
        for n, line in prose_lines(markdown_of(page)):
            for m in LINK.finditer(line):
                target = m.group(3)
                if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
                    continue
                n_links += 1
                file_part, _, anchor = target.partition("#")
                dest = page if not file_part else os.path.normpath(
                    os.path.join(os.path.dirname(page), file_part))
                where = f"{rel_page}:{n}: ({target})"
                if not os.path.exists(dest):
                    dead.append(f"{where}: {os.path.relpath(dest, root)} does not exist")
                elif anchor and (dest.endswith(".md") or dest.endswith(".ipynb")):
                    if anchor not in anchors(dest, cache):
                        dead.append(f"{where}: no heading #{anchor} in "
                                    f"{os.path.relpath(dest, root)}")
    return dead, n_links


def self_test():
    """The checker must catch a planted dead file link, a dead anchor and a dead notebook link,
    and pass the same pages once they are fixed."""
    with tempfile.TemporaryDirectory() as root:
        os.makedirs(os.path.join(root, "docs"))
        os.makedirs(os.path.join(root, "notebooks"))

        def write(rel, text):
            with open(os.path.join(root, rel), "w", encoding="utf-8") as f:
                f.write(text)

        write("docs/b.md", "# Title\n\n## The `x` rule, again!\n\ntext\n")
        write("README.md", "[ok](docs/b.md#the-x-rule-again) [ok](docs/b.md#title)\n"
                           "`[code](nowhere.md)` [web](https://example.org/x)\n"
                           "```\n[fenced](nowhere.md)\n```\n")
        nb = {"cells": [{"cell_type": "markdown", "source": ["[ok](../docs/b.md)"]}],
              "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
        write("notebooks/1.ipynb", json.dumps(nb))
        dead, n = check(root)
        if dead or n != 3:
            sys.exit(f"self-test: clean pages reported {dead} ({n} links)")
        write("docs/a.md", "[gone](missing.md) [bad anchor](b.md#no-such) [self](#nope)\n")
        nb["cells"][0]["source"] = ["[gone](../docs/missing.ipynb)"]
        write("notebooks/1.ipynb", json.dumps(nb))
        dead, _ = check(root)
        want = ["missing.md does not exist", "#no-such", "#nope", "missing.ipynb does not exist"]
        for w in want:
            if not any(w in d for d in dead):
                sys.exit(f"self-test: planted dead link '{w}' not caught: {dead}")
        if len(dead) != len(want):
            sys.exit(f"self-test: expected {len(want)} dead links, got {dead}")
    print("self-test: 4 planted dead links caught, clean pages pass")


def main():
    if sys.argv[1:] == ["--self-test"]:
        self_test()
        return
    if len(sys.argv) != 2:
        sys.exit(__doc__.split("\n\n")[1])
    dead, n = check(sys.argv[1])
    for d in dead:
        print(d)
    print(f"{n} relative links checked, {len(dead)} dead")
    sys.exit(1 if dead else 0)


if __name__ == "__main__":
    main()
