#!/usr/bin/python3
""".ci/summarize.py — sums test results from meson's testlog.json into one plain line,
'N passed, N failed', and exits 1 if anything failed.

For each meson test: cmocka's own per-test counts when it printed them ("[  PASSED  ] N
test(s)." / "[  FAILED  ] N test(s), listed below:", summed over every group it ran); else a
script's "N passed, N failed" line (tests/cli/cli_e2e.sh); else the meson verdict counts as one.
A meson test that failed (crash, timeout, non-zero exit) counts at least one failure even when
its printed counts do not show one. Usage: summarize.py build/meson-logs/testlog.json ...
"""
import json
import re
import sys

PASSED = re.compile(r"^\[  PASSED  \] (\d+) test\(s\)\.", re.M)
FAILED = re.compile(r"^\[  FAILED  \] (\d+) test\(s\), listed below:", re.M)
SCRIPT = re.compile(r"^(\d+) passed, (\d+) failed$", re.M)


def counts(entry):
    text = (entry.get("stdout") or "") + "\n" + (entry.get("stderr") or "")
    ok = entry.get("result") in ("OK", "EXPECTEDFAIL", "SKIP")
    p = [int(n) for n in PASSED.findall(text)]
    f = [int(n) for n in FAILED.findall(text)]
    if p or f:
        passed, failed = sum(p), sum(f)
    elif SCRIPT.search(text):
        m = SCRIPT.findall(text)[-1]
        passed, failed = int(m[0]), int(m[1])
    else:
        passed, failed = (1, 0) if ok else (0, 1)
    if not ok and failed == 0:
        failed = 1
    return passed, failed


def main(paths):
    passed = failed = 0
    for path in paths:
        try:
            log = open(path)
        except OSError as err:  # a pass that did not get as far as its tests
            print(f"failed: no test log {path} ({err.strerror})")
            failed += 1
            continue
        with log:
            for line in log:
                line = line.strip()
                if not line:
                    continue
                entry = json.loads(line)
                p, f = counts(entry)
                passed += p
                failed += f
                if f:
                    print(f"failed: {entry['name']} ({entry.get('result')}, {f} failed)")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed or passed == 0 else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
