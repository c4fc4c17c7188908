#!/bin/sh
# fuzz.sh — runs the libFuzzer harnesses (build/fuzz/fuzz_<target>).
#   fuzz.sh run SECONDS TARGET...     fuzz each target SECONDS, seeded from
#       tests/fuzz/corpus/<target>/; working corpus in build/fuzz/work/<target>,
#       crashes in build/fuzz/crashes/<target>/ (copy them into the corpus
#       once fixed); prints the edges (cov) reached per target.
#   fuzz.sh replay 0 TARGET...        run each harness once over its corpus
#       files (no fuzzing): the regression replay `make test` does.
set -eu
mode=$1 secs=$2
shift 2
status=0
for t in "$@"; do
    corpus=tests/fuzz/corpus/$t
    mkdir -p "$corpus"
    if [ "$mode" = replay ]; then
        n=$(find "$corpus" -type f | wc -l)
        if [ "$n" -gt 0 ]; then
            build/fuzz/fuzz_$t -runs=0 $(find "$corpus" -type f | sort) >build/fuzz/replay-$t.log 2>&1 ||
                { echo "fuzz replay $t: FAILED (build/fuzz/replay-$t.log)"; tail -30 build/fuzz/replay-$t.log; status=1; continue; }
        fi
        echo "fuzz replay $t: $n inputs ok"
    else
        work=build/fuzz/work/$t crashes=build/fuzz/crashes/$t
        mkdir -p "$work" "$crashes"
        rc=0
        build/fuzz/fuzz_$t -max_total_time="$secs" -max_len=65536 -timeout=10 -rss_limit_mb=2048 \
            -artifact_prefix="$crashes/" -print_final_stats=1 "$work" "$corpus" \
            >build/fuzz/fuzz-$t.log 2>&1 || rc=$?
        cov=$(grep -o 'cov: [0-9]*' build/fuzz/fuzz-$t.log | tail -1)
        execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' build/fuzz/fuzz-$t.log | grep -o '[0-9]*$' || true)
        echo "fuzz $t: ${secs}s, $cov edges, ${execs:-?} execs, exit $rc"
        [ "$rc" = 0 ] || { echo "  crash: $(ls "$crashes")"; status=1; }
    fi
done
exit $status
