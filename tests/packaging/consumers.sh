#!/bin/bash
# tests/packaging/consumers.sh SRC — suite 'packaging': libflashmask used from outside, three
# ways, each in a temporary directory (the source tree is never written):
#   1. installed: `meson setup --prefix TMP/prefix` + `meson install`, then consumer.c compiled
#      with `pkg-config --cflags --libs flashmask` (PKG_CONFIG_PATH) and run; the installed
#      Python package imported (PYTHONPATH only, no FLASHMASK_LIB) must load the prefix's
#      library; the CLI's `version --json` must report the project version;
#   2. subproject: tests/packaging/subproject with subprojects/libflashmask -> SRC, built with
#      --force-fallback-for=flashmask; its CPU layer must not be built with -march=native;
#   3. wheel: a venv (--system-site-packages, for numpy) and
#      `pip install --no-build-isolation` of a copy of SRC (offline: Debian's meson-python);
#      `import flashmask` outside the tree, without environment variables, loads the copy inside
#      the package, the `flashmask` console script runs, and tests/python's binding and layout
#      tests and notebooks 2 and 4 run on it.
# Prints one "ok"/"FAIL" line per check (with the seconds each step took); exit 1 if any failed.
set -uo pipefail
src=$(cd "$1" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
unset FLASHMASK_LIB FLASHMASK_EXE PYTHONPATH
export PYTHONDONTWRITEBYTECODE=1
fails=0
ok() { echo "ok   [${SECONDS}s] $*"; }
fail() { echo "FAIL [${SECONDS}s] $*"; fails=$((fails + 1)); }
quiet() { # run a command, show its output only when it fails
    local log=$tmp/log
    if "$@" >"$log" 2>&1; then return 0; fi
    tail -40 "$log"
    return 1
}
opts=(-Dtests=false -Dcuda=disabled)
version=$(sed -n "s/^  version: '\(.*\)',$/\1/p" "$src/meson.build")

# ---- 1. installed copy, through pkg-config
prefix=$tmp/prefix
if quiet meson setup "$tmp/build" "$src" --prefix="$prefix" --libdir=lib "${opts[@]}" \
    && quiet meson compile -C "$tmp/build" && quiet meson install -C "$tmp/build"; then
    export PKG_CONFIG_PATH=$prefix/lib/pkgconfig
    if [ "$(pkg-config --modversion flashmask)" = "$version" ] \
        && quiet cc -std=c11 -o "$tmp/consumer" "$src/tests/packaging/consumer.c" \
            $(pkg-config --cflags --libs flashmask) -lm -Wl,-rpath,"$prefix/lib" \
        && quiet "$tmp/consumer"; then
        ok "pkg-config: consumer built against $prefix and ran (flashmask $version)"
    else
        fail "pkg-config consumer"
    fi
    unset PKG_CONFIG_PATH
    if [ -L "$prefix/lib/libflashmask.so.0" ] \
        && readelf -d "$prefix/lib/libflashmask.so" | grep -q 'SONAME.*libflashmask\.so\.0\]'; then
        ok "SONAME libflashmask.so.0"
    else
        fail "SONAME: $(readelf -d "$prefix/lib/libflashmask.so" | grep SONAME)"
    fi
    site=$(find "$prefix" -name _installed.py -path '*flashmask*' -printf '%h\n' | head -1)
    got=$(cd "$tmp" && PYTHONPATH=$(dirname "$site") /usr/bin/python3 -c \
        'import flashmask as fm; print(fm.LIB_PATH, fm.__version__)' 2>&1)
    case "$got" in
    "$prefix"/lib/libflashmask.so.0" $version") ok "meson install: python loads $got" ;;
    *) fail "meson install: python imported: $got" ;;
    esac
    # (an installed program has no RPATH: outside the linker's path, LD_LIBRARY_PATH finds it)
    if LD_LIBRARY_PATH=$prefix/lib "$prefix/bin/flashmask" version --json | /usr/bin/python3 -c \
        "import json, sys; assert json.load(sys.stdin)['version'] == '$version'"; then
        ok "installed CLI: version --json"
    else
        fail "installed CLI: version --json"
    fi
else
    fail "meson setup/compile/install to $prefix"
fi

# ---- 2. Meson subproject
proj=$tmp/subproject
mkdir -p "$proj/subprojects"
cp "$src/tests/packaging/subproject/meson.build" "$src/tests/packaging/consumer.c" "$proj/"
ln -s "$src" "$proj/subprojects/libflashmask"
if quiet meson setup "$proj/build" "$proj" --force-fallback-for=flashmask \
    && quiet meson compile -C "$proj/build" && quiet "$proj/build/consumer"; then
    ok "subproject: dependency('flashmask') through override_dependency, consumer ran"
    if grep -q -- '-march=native' "$proj/build/build.ninja"; then
        fail "subproject: the CPU layer was built with -march=native (native_cpu=auto)"
    else
        ok "subproject: no -march=native"
    fi
else
    fail "subproject consumer"
fi

# ---- 3. pip install --no-build-isolation into a venv (offline)
copy=$tmp/src
mkdir "$copy"
(cd "$src" && tar --exclude='./build*' --exclude=./.git --exclude='./.mesonpy-*' --exclude=./.gpu --exclude=./.whl \
    --exclude=__pycache__ -cf - .) | (cd "$copy" && tar -xf -)
venv=$tmp/venv
if quiet /usr/bin/python3 -m venv --system-site-packages "$venv" \
    && quiet "$venv/bin/pip" install --no-build-isolation --no-index \
        --config-settings=setup-args=-Dcuda=disabled "$copy"; then
    got=$(cd "$tmp" && "$venv/bin/python" -c \
        'import flashmask as fm, numpy as np
m = fm.build("causal", seqlen_q=8)
q = np.ones((1, 1, 8, 4))
out, lse = fm.forward(q, q, q, m)
print(fm.LIB_PATH, int(m.allowed_pairs()))' 2>&1)
    case "$got" in
    "$venv"/lib/python3*/site-packages/flashmask/libflashmask.so" 36") ok "wheel: $got" ;;
    *) fail "wheel: import flashmask: $got" ;;
    esac
    if quiet "$venv/bin/flashmask" version; then
        ok "wheel: the flashmask console script runs the packaged CLI"
    else
        fail "wheel: flashmask console script"
    fi
    # the Python tests on the installed package (no PYTHONPATH: tests/python is not the package)
    if (cd "$copy/tests/python" && quiet "$venv/bin/python" -m unittest test_flashmask test_layout); then
        ok "wheel: tests/python (test_flashmask, test_layout) pass on the installed package"
    else
        fail "wheel: tests/python on the installed package"
    fi
    # two notebooks (one drives the CLI) on the installed package; all five: docs/python.md
    if (cd "$tmp" && quiet "$venv/bin/python" "$src/notebooks/run_all.py" --copy \
        --python "$venv/bin/python" "$src/notebooks/2-forward.ipynb" \
        "$src/notebooks/4-validate-your-kernel.ipynb"); then
        ok "wheel: notebooks 2 and 4 ran on the installed package"
    else
        fail "wheel: notebooks on the installed package"
    fi
else
    fail "pip install --no-build-isolation"
fi

echo "packaging: $fails failed"
[ "$fails" = 0 ]
