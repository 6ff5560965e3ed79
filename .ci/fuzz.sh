#!/usr/bin/env bash
# Runs cargo-fuzz targets for a bounded time each, on stable (`--sanitizer none`: libFuzzer's
# coverage guidance without AddressSanitizer; the code under test forbids `unsafe`, and a panic is
# what we are looking for). New inputs go to a scratch corpus, so the committed seeds stay as they
# are; a crash leaves its input in the project's artifacts/ directory and fails the run.
#
#   .ci/fuzz.sh <fuzz project dir> <seconds per target> <target>...
set -euo pipefail
project=$1
seconds=$2
shift 2
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
cd "$project"
# Builds every target of the project once.
cargo fuzz build --sanitizer none >/dev/null 2>&1 || cargo fuzz build --sanitizer none
for target in "$@"; do
    mkdir -p "$scratch/$target"
    seeds=()
    [ -d "corpus/$target" ] && seeds=("corpus/$target")
    log="$scratch/$target.log"
    if ! cargo fuzz run --sanitizer none "$target" "$scratch/$target" "${seeds[@]}" -- \
        -max_total_time="$seconds" -print_final_stats=1 >"$log" 2>&1; then
        tail -n 40 "$log"
        echo "fuzz: $target FAILED (see the crash input above and in $project/artifacts/$target/)"
        exit 1
    fi
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n 1 | grep -o '[0-9]*' || echo "?")
    echo "fuzz: $target: ${seconds}s, $runs runs, coverage $cov, no crash"
done
