#!/usr/bin/env python3
"""tests/tree/check_layering.py — suite 'tree': the layering of the library, checked from the code.

The library's folders form layers (docs/architecture.md). A layer may use only the layers listed
for it in ALLOWED below — never one above it — and this script checks that two ways:

1. includes (from the sources): every `#include "..."` in a library folder resolves to a file;
   the file's layer must be the includer's own or an allowed one. Public headers belong to the
   layer named in HEADER_LAYER; a private header (one outside include/) may be included only from
   its own folder, except where PRIVATE_EXPORTS names it. No cycle of includes between files.
   No library source reads the environment (getenv): choices are arguments.
2. calls (from the objects, when a build directory is given): every symbol an object of
   libflashmask uses comes from its own layer or an allowed one, and no cycle of calls runs
   between source files (a file that calls a file that ... calls it back).

Usage: check_layering.py SOURCE_ROOT [BUILD_DIR] [--doc FILE | --write-doc FILE]
Exit 0 clean; 1 with one line per violation. --doc FILE also fails when FILE's layer picture (a
Mermaid graph between the layers:begin / layers:end comments, docs/architecture.md) is not the
one the code gives (the folder graph of includes and calls, transitively reduced); --write-doc
rewrites it."""
import os
import re
import subprocess
import sys

# Which layers each library folder may use (besides itself). Top-level consumers (tools, tests,
# bench, fuzz, python, examples, notebooks) may use everything and are not checked.
ALLOWED = {
    "core": set(),
    "masks": {"core"},
    "reference": {"core", "masks"},
    "cpu": {"core", "masks"},
    "cuda": {"core", "masks"},
    "sparse": {"core", "masks"},
    "io": {"core", "masks", "reference", "sparse"},
    "oracle": {"core", "masks", "reference", "sparse", "io"},
    "api": {"core", "masks", "reference", "cpu", "cuda", "sparse", "io", "oracle"},
}
LIBRARY = set(ALLOWED)

HEADER_LAYER = {
    "include/flashmask.h": "api",
    "include/flashmask/core.h": "core",
    "include/flashmask/masks.h": "masks",
    "include/flashmask/rules.h": "masks",
    "include/flashmask/bbm.h": "masks",
    "include/flashmask/reference.h": "reference",
    "include/flashmask/cpu.h": "cpu",
    "include/flashmask/cuda.h": "cuda",
    "include/flashmask/sparse.h": "sparse",
    "include/flashmask/io.h": "io",
    "include/flashmask/oracle.h": "oracle",
    "include/flashmask/api.h": "api",
}
# Private headers that a higher layer may include (the internal entry points it binds).
PRIVATE_EXPORTS = {
    "core/fm_internal.h": set(ALLOWED),      # error reporting and checked allocation, everywhere
    "sparse/sparse_run.h": {"api"},          # the pipelines' entry points that api/ binds
    "sparse/gather.h": {"oracle"},           # row blocks: the dense pass rule's naive runs
}
SOURCE_EXT = (".c", ".h", ".cu", ".cuh")
INCLUDE_RE = re.compile(r'^\s*#\s*include\s*"([^"]+)"', re.M)
GETENV_RE = re.compile(r"\b(?:secure_)?getenv\s*\(")


def layer_of(rel):
    if rel in HEADER_LAYER:
        return HEADER_LAYER[rel]
    top = rel.split("/", 1)[0]
    return top if top in LIBRARY else None


def library_files(root):
    out = []
    for top in sorted(LIBRARY) + ["include"]:
        for d, dirs, names in os.walk(os.path.join(root, top)):
            dirs[:] = [x for x in dirs if x != "experimental"]  # standalone probes, not linked
            out += [os.path.relpath(os.path.join(d, n), root) for n in sorted(names)
                    if n.endswith(SOURCE_EXT)]
    return out


def resolve(root, rel, name):
    for base in (os.path.dirname(rel), "include", "core"):
        cand = os.path.normpath(os.path.join(base, name))
        if os.path.isfile(os.path.join(root, cand)):
            return cand
        # a header Meson generates from NAME.in (include/flashmask/version.h)
        if os.path.isfile(os.path.join(root, cand + ".in")):
            return cand + ".in"
    return None


def find_cycles(graph):
    """Strongly connected components of more than one node (Tarjan, iterative)."""
    index, low, on, stack, out, counter = {}, {}, set(), [], [], [0]
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph.get(start, ()))))]
        index[start] = low[start] = counter[0]; counter[0] += 1
        stack.append(start); on.add(start)
        while work:
            v, it = work[-1]
            nxt = next(it, None)
            if nxt is not None:
                if nxt not in index:
                    index[nxt] = low[nxt] = counter[0]; counter[0] += 1
                    stack.append(nxt); on.add(nxt)
                    work.append((nxt, iter(sorted(graph.get(nxt, ())))))
                elif nxt in on:
                    low[v] = min(low[v], index[nxt])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop(); on.discard(w); comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    out.append(sorted(comp))
    return out


def check_includes(root, errors, edges):
    graph = {}
    for rel in library_files(root):
        me = layer_of(rel)
        with open(os.path.join(root, rel), encoding="utf-8", errors="replace") as f:
            text = f.read()
        if GETENV_RE.search(text):
            errors.append(f"{rel}: reads the environment (getenv); the library takes its choices "
                          "as arguments (e.g. fm_kernel_options)")
        for name in INCLUDE_RE.findall(text):
            target = resolve(root, rel, name)
            if target is None:
                errors.append(f"{rel}: #include \"{name}\" resolves to no file of the tree")
                continue
            graph.setdefault(rel, set()).add(target)
            them = layer_of(target)
            if me is None or them is None or them == me:
                continue
            if not target.startswith("include/") and me not in PRIVATE_EXPORTS.get(target, ()):
                errors.append(f"{rel}: includes {target}, a private header of {them}/")
                continue
            if them not in ALLOWED.get(me, set()):
                errors.append(f"{rel}: includes {target}: layer {me} may not use {them}")
            else:
                edges.add((me, them))
    for comp in find_cycles(graph):
        errors.append("include cycle between files: " + " -> ".join(comp))


def object_source(name):
    """core_dispatch.c.o -> core/dispatch.c (library folders hold no underscore)."""
    base = name[:-2] if name.endswith(".o") else name
    top, _, rest = base.partition("_")
    return f"{top}/{rest}" if top in LIBRARY and rest else None


def check_calls(root, build, errors, edges):
    """Objects of libflashmask: build/libflashmask.so.p/<folder>_<file>.o, and the static
    libraries a layer links in whole (build/<folder>/lib*.a.p/<file>.o)."""
    objects = []
    for d, dirs, names in os.walk(build):
        base = os.path.basename(d)
        if not (base.endswith(".p") and base.startswith("lib")):
            continue
        folder = os.path.relpath(os.path.dirname(d), build)
        if folder != "." and folder not in LIBRARY:
            continue  # tests', tools', bench's own libraries
        for n in sorted(names):
            if not n.endswith(".o"):
                continue
            src = object_source(n) if folder == "." else f"{folder}/{n[:-2]}"
            if os.path.isfile(os.path.join(root, "cuda", n[:-2] + ".cu")):
                # nvcc's objects (a generator): api.o, host.o, reference_f64_api.o (whose name
                # would otherwise read as reference/f64_api)
                src = f"cuda/{n[:-2]}.cu"
            if src:
                objects.append((src, os.path.join(d, n)))
    if not objects:
        errors.append(f"{build}: no object of libflashmask found (build it first)")
        return
    defined, used = {}, {}
    for src, path in objects:
        out = subprocess.run(["nm", "-P", path], capture_output=True, text=True).stdout
        for line in out.splitlines():
            parts = line.split()
            if len(parts) < 2:
                continue
            sym, kind = parts[0], parts[1]
            if kind == "U":
                used.setdefault(src, set()).add(sym)
            elif kind in "TDBRVW" and kind.isupper():
                defined.setdefault(sym, src)
    graph = {}
    for src, syms in sorted(used.items()):
        me = layer_of(src)
        for sym in sorted(syms):
            owner = defined.get(sym)
            if owner is None or owner == src:
                continue
            graph.setdefault(src, set()).add(owner)
            them = layer_of(owner)
            if them != me and them not in ALLOWED[me]:
                errors.append(f"{src}: calls {sym} of {owner}: layer {me} may not use {them}")
            elif them != me:
                edges.add((me, them))
    for comp in find_cycles(graph):
        errors.append("call cycle between files: " + " -> ".join(comp))


def reduced(edges):
    """The transitive reduction of the layer graph (a DAG once the checks pass): an edge that a
    longer path already implies is left out of the picture."""
    succ = {}
    for a, b in edges:
        succ.setdefault(a, set()).add(b)

    def reaches(a, b, skip):
        stack, seen = [a], set()
        while stack:
            x = stack.pop()
            for y in succ.get(x, ()):
                if (x, y) == skip or y in seen:
                    continue
                if y == b:
                    return True
                seen.add(y)
                stack.append(y)
        return False

    return sorted(e for e in edges if not reaches(e[0], e[1], e))


DOC_BEGIN = "<!-- layers:begin (generated by tests/tree/check_layering.py --write-doc) -->"
DOC_END = "<!-- layers:end -->"


def doc_block(edges):
    lines = [DOC_BEGIN, "```mermaid", "graph BT"]
    lines += [f"  {a} --> {b}" for a, b in reduced(edges)]
    lines += ["```", DOC_END]
    return "\n".join(lines)


def sync_doc(path, edges, write, errors):
    with open(path, encoding="utf-8") as f:
        text = f.read()
    a, b = text.find(DOC_BEGIN), text.find(DOC_END)
    if a < 0 or b < a:
        errors.append(f"{path}: no layer picture between {DOC_BEGIN} and {DOC_END}")
        return
    new = text[:a] + doc_block(edges) + text[b + len(DOC_END):]
    if new == text:
        return
    if write:
        with open(path, "w", encoding="utf-8") as f:
            f.write(new)
    else:
        errors.append(f"{path}: the layer picture is not the code's; regenerate it with "
                      f"tests/tree/check_layering.py SOURCE BUILD --write-doc {path}:\n"
                      + doc_block(edges))


def main(argv):
    opts = {}
    args = []
    it = iter(argv)
    for a in it:
        if a in ("--doc", "--write-doc"):
            opts[a] = next(it, None)
        else:
            args.append(a)
    root = args[0] if args else "."
    errors, edges = [], set()
    check_includes(root, errors, edges)
    if len(args) > 1:
        check_calls(root, args[1], errors, edges)
    doc = opts.get("--doc") or opts.get("--write-doc")
    if doc and not errors:
        sync_doc(os.path.join(root, doc), edges, "--write-doc" in opts, errors)
    for e in errors:
        print(e)
    if errors:
        print(f"{len(errors)} layering violation(s); the table is ALLOWED in "
              "tests/tree/check_layering.py, the picture docs/architecture.md", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
