#!/usr/bin/env bash
# Runs every test wardgate has: formatting and lints, Rust unit/property/integration
# tests, interop tests against real HL7 peers, a short fuzz run of every parser,
# and the demo (which checks its own outcomes). This is the command CI runs.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never

step() { printf '\n==> %s (%s UTC)\n' "$*" "$(date -u +%H:%M:%S)"; }

step "setup"
scripts/setup.sh

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings

step "build"
cargo build -p wardgate

step "fuzz smoke (every parser target, ${FUZZ_SECONDS:=15}s each)"
scripts/fuzz.sh "$FUZZ_SECONDS"

step "demo (checks its own outcomes)"
target/debug/wardgate demo --dir target/wardgate-demo

step "interop tests against real peers"
WARDGATE_BIN="$PWD/target/debug/wardgate" .venv/bin/python -m pytest tests/interop -q -p no:cacheprovider

step "Rust tests"
cargo nextest run --workspace --no-fail-fast
