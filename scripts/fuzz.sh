#!/usr/bin/env bash
# Fuzz every parser that reads data ci-agent did not write (see docs/security.md).
#
# usage: scripts/fuzz.sh SECONDS [TARGET...]    (FUZZ_JOBS=N: N targets at a time, default 1)
#
# Builds the cargo-fuzz targets (nightly), then runs each TARGET (default: all of
# `cargo fuzz list`) one after the other for SECONDS with libFuzzer limits (-timeout=10 s
# per input, -rss_limit_mb=2048), on fuzz/corpus/TARGET (seeded by fuzz/seed-corpus.sh
# when empty; the corpus grows across runs). Prints one line per target: seconds run,
# execs, cov/ft from libFuzzer's final status line, crashes. Full logs go to
# $FUZZ_LOG_DIR (default /tmp/fuzz-logs). Exits 1 when any target found a crash, leak,
# timeout or OOM (the reproducer is in fuzz/artifacts/TARGET/), 2 on usage/build errors.
#
# CI runs it with SECONDS=60; a campaign by hand with SECONDS=1800 (under `nice -n 19`
# on a shared machine). CI sets FUZZ_JOBS to its core count: each target still runs
# SECONDS on a core of its own, in a fraction of the wall time. Needs: rustup nightly;
# cargo-fuzz is installed when missing.
set -eu

usage() {
    echo "usage: $0 SECONDS [TARGET...]" >&2
    exit 2
}
[ $# -ge 1 ] || usage
secs=$1
shift
case $secs in '' | *[!0-9]*) usage ;; esac
[ "$secs" -gt 0 ] || usage

repo=$(cd "$(dirname "$0")/.." && pwd)
fuzz="$repo/fuzz"
logs=${FUZZ_LOG_DIR:-/tmp/fuzz-logs}
mkdir -p "$logs"

if ! rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
    echo "fuzz.sh: no nightly toolchain (rustup toolchain install nightly)" >&2
    exit 2
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    echo "fuzz.sh: installing cargo-fuzz" >&2
    cargo install --locked cargo-fuzz >"$logs/cargo-install.log" 2>&1 || {
        tail -20 "$logs/cargo-install.log" >&2
        echo "fuzz.sh: cargo-fuzz is missing and could not be installed" >&2
        exit 2
    }
fi

cd "$fuzz"
if [ $# -eq 0 ]; then
    # shellcheck disable=SC2046
    set -- $(cargo +nightly fuzz list)
fi
[ $# -gt 0 ] || { echo "fuzz.sh: no fuzz targets" >&2; exit 2; }

echo "fuzz.sh: building $*" >&2
cargo +nightly fuzz build >"$logs/build.log" 2>&1 || {
    tail -30 "$logs/build.log" >&2
    echo "fuzz.sh: build failed (log: $logs/build.log)" >&2
    exit 2
}

# Seed corpora come from real tools' images and the test fixtures (nothing committed).
need_seed=
for t in "$@"; do
    if [ ! -d "corpus/$t" ] || [ -z "$(ls -A "corpus/$t" 2>/dev/null)" ]; then need_seed=1; fi
done
if [ -n "$need_seed" ]; then
    sh "$fuzz/seed-corpus.sh" >"$logs/seed-corpus.log" 2>&1 ||
        echo "fuzz.sh: seed-corpus.sh failed (see $logs/seed-corpus.log); starting from empty corpora" >&2
fi

jobs=${FUZZ_JOBS:-1}
case $jobs in '' | *[!0-9]* | 0) echo "fuzz.sh: FUZZ_JOBS must be a positive number" >&2; exit 2 ;; esac

# One target: its table row goes to $logs/$t.row, its verdict (0 clean, 1 not) to $logs/$t.rc.
run_one() {
    t=$1
    mkdir -p "corpus/$t" "artifacts/$t"
    log="$logs/$t.log"
    before=$(find "artifacts/$t" -type f | wc -l)
    start=$(date +%s)
    rc=0
    cargo +nightly fuzz run "$t" "corpus/$t" -- \
        -max_total_time="$secs" -rss_limit_mb=2048 -timeout=10 \
        -print_final_stats=1 -artifact_prefix="artifacts/$t/" >"$log" 2>&1 || rc=$?
    end=$(date +%s)
    after=$(find "artifacts/$t" -type f | wc -l)
    crashes=$((after - before))
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    # The last libFuzzer status line ("#N DONE cov: C ft: F corp: ...").
    status=$(grep -E '^#[0-9]+.*cov: ' "$log" | tail -1 || true)
    cov=$(echo "$status" | sed -n 's/.* cov: \([0-9]*\).*/\1/p')
    ft=$(echo "$status" | sed -n 's/.* ft: \([0-9]*\).*/\1/p')
    if [ "$rc" -ne 0 ] && [ "$crashes" -eq 0 ]; then
        # libFuzzer failed without an artifact (e.g. the target could not start).
        crashes='?'
    fi
    printf '%-18s %8s %12s %8s %8s %8s  %s\n' "$t" "$((end - start))" "${execs:--}" \
        "${cov:--}" "${ft:--}" "$crashes" "$log" >"$logs/$t.row"
    if [ "$rc" -ne 0 ] || [ "$crashes" != 0 ]; then
        echo 1 >"$logs/$t.rc"
        {
            grep -E '^(==[0-9]+==|SUMMARY|thread .* panicked|artifact_prefix)' "$log" | head -5 || true
            find "artifacts/$t" -type f | sed "s|^|    |"
        } >"$logs/$t.why"
    else
        echo 0 >"$logs/$t.rc"
    fi
}

for t in "$@"; do rm -f "$logs/$t.row" "$logs/$t.rc" "$logs/$t.why"; done
running=0
for t in "$@"; do
    if [ "$running" -ge "$jobs" ]; then
        wait -n || true
        running=$((running - 1))
    fi
    run_one "$t" &
    running=$((running + 1))
done
wait

failed=0
printf '%-18s %8s %12s %8s %8s %8s  %s\n' target seconds execs cov ft crashes log
for t in "$@"; do
    cat "$logs/$t.row" 2>/dev/null || printf '%-18s (no result)\n' "$t"
    if [ "$(cat "$logs/$t.rc" 2>/dev/null || echo 1)" != 0 ]; then
        failed=1
        cat "$logs/$t.why" >&2 2>/dev/null || true
    fi
done
exit "$failed"
