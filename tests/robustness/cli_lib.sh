# tests/robustness/cli_lib.sh — what the hostile-CLI scripts (cli_hostile.sh, cli_cases.sh)
# share, sourced by them: a scratch directory, ASan settings, the pass/fail tally and the
# `expect` / `expect_msg` checks. Before sourcing, a script sets
#   NAME    (its scratch directory is /tmp/fm-NAME-XXXXXX, removed on exit),
#   LIMIT   (seconds one command may take),
#   NAMED_REFUSALS=1 where an exit 2 must also print a "flashmask <cmd>: ..." message.
# It ends with `finish`, which prints "N passed, N failed" and fails if anything failed.
T=$(mktemp -d "/tmp/fm-$NAME-XXXXXX")
trap 'rm -rf "$T"' EXIT
# Under ASan (the sanitized CI pass) an impossible allocation must return NULL as malloc does.
# Leak checking is off here: these processes exit right after refusing (the cmocka suites check
# the library for leaks), and LeakSanitizer's tracer crashed once under load ("Tracer caught
# signal 11"), which would make these tests flaky.
export ASAN_OPTIONS="${ASAN_OPTIONS:-}${ASAN_OPTIONS:+:}allocator_may_return_null=1:detect_leaks=0"
fails=0
passes=0
ok() { passes=$((passes + 1)); }
bad() { fails=$((fails + 1)); echo "FAIL $*"; }

# expect CODES DESCRIPTION -- command...   (CODES: "2" or "0|2"): the exit code must be one of
# CODES, never a time-out or a sanitizer report
expect() {
    local want=$1 what=$2
    shift 3
    timeout "$LIMIT" "$@" >"$T/stdout" 2>"$T/stderr" </dev/null
    local got=$?
    if [ "$got" -eq 124 ]; then bad "$what: timed out after ${LIMIT}s"; return; fi
    if grep -qE 'Sanitizer|runtime error:' "$T/stderr"; then
        bad "$what: sanitizer report"; sed 's/^/    /' "$T/stderr" | head -20; return; fi
    if ! [[ "|$want|" == *"|$got|"* ]]; then
        bad "$what: exit $got, expected $want"; sed 's/^/    /' "$T/stderr" | head -5; return; fi
    # a refusal names itself: "flashmask <cmd>: <status>: <message>" (check and check-suite
    # print their usage first), or the top-level usage when no command was given at all
    if [ "${NAMED_REFUSALS:-0}" = 1 ] && [ "$got" -eq 2 ] &&
        ! grep -qE '^(flashmask( [a-z_-]+)?: |usage: flashmask <command>)' "$T/stderr"; then
        bad "$what: exit 2 without a 'flashmask <cmd>: ...' message"
        sed 's/^/    /' "$T/stderr" | head -5; return; fi
    ok
}

# the last command's stderr must contain TEXT
expect_msg() {
    if grep -qF -- "$1" "$T/stderr"; then ok; else
        bad "stderr lacks '$1':"; sed 's/^/    /' "$T/stderr" | head -5; fi
}

finish() {
    echo "$passes passed, $fails failed"
    [ "$fails" -eq 0 ]
}
