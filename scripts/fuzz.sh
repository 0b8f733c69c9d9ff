#!/usr/bin/env bash
# Runs every cargo-fuzz target for N seconds (default 60). There is only a stable
# toolchain here; RUSTC_BOOTSTRAP=1 lets cargo-fuzz use the sanitizer flags.
#   scripts/fuzz.sh 600          # ten minutes per target
#   scripts/fuzz.sh 60 hl7_parse # one target
# FUZZ_SEED fixes libFuzzer's random seed (default 1), so that a run from the
# committed seeds is repeatable: CI's smoke run explores the same inputs a
# longer local run with the same seed already explored first. FUZZ_SEED=0 draws
# a fresh seed each run, for exploratory fuzzing.
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-60}"
seed="${FUZZ_SEED:-1}"
shift || true
export RUSTC_BOOTSTRAP=1
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(cargo fuzz list)
fi
# Built once (each `cargo fuzz run` would check the build again), then run
# FUZZ_JOBS targets at a time (default: one per core; each is single-threaded).
build=(cargo fuzz build)
if [ "$#" -eq 1 ]; then build+=("$1"); fi
if ! "${build[@]}" >target/fuzz-build.log 2>&1; then
  tail -n 60 target/fuzz-build.log
  echo "fuzz: build FAILED"
  exit 1
fi
bin="fuzz/target/$(rustc -vV | sed -n 's/^host: //p')/release"
jobs="${FUZZ_JOBS:-$(nproc)}"
run_one() {
  local t="$1"
  mkdir -p "fuzz/corpus/$t"
  # Work on a copy so the committed seed corpus only changes on purpose.
  local work="target/fuzz-corpus/$t"
  mkdir -p "$work"
  cp -n fuzz/corpus/"$t"/* "$work"/ 2>/dev/null || true
  local log="target/fuzz-$t.log"
  # libFuzzer writes crash reproducers to the working directory's prefix.
  mkdir -p "fuzz/artifacts/$t"
  if ! "$bin/$t" "$work" -artifact_prefix="fuzz/artifacts/$t/" -max_total_time="$secs" -seed="$seed" -max_len=65536 -print_final_stats=1 >"$log" 2>&1; then
    tail -n 60 "$log"
    echo "fuzz: $t FAILED (crash); reproducer under fuzz/artifacts/$t/"
    return 1
  fi
  echo "fuzz: $t for ${secs}s (seed $seed): $(grep -E '^stat::number_of_executed_units' "$log" | tr -s ' ')"
}
failed=0
running=0
for t in "${targets[@]}"; do
  run_one "$t" &
  running=$((running + 1))
  if [ "$running" -ge "$jobs" ]; then
    wait -n || failed=1
    running=$((running - 1))
  fi
done
while [ "$running" -gt 0 ]; do
  wait -n || failed=1
  running=$((running - 1))
done
if [ "$failed" -ne 0 ]; then
  echo "fuzz: at least one target FAILED"
  exit 1
fi
