#!/usr/bin/env bash
# Runs every Roleout test: unit tests, integration tests against a private
# slapd, and the end-to-end tests in tests/. Installs what is missing first.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
export PATH="$HOME/.cargo/bin:$PATH"

cargo build --workspace --all-targets --locked
# The descriptors of the example catalog must pass the author's check.
cargo run --quiet --locked -p roleout-builder --bin roleout-admin -- check examples/*.xml
cargo test --workspace --locked --no-fail-fast
# What Roleout reads from others (descriptors, API bodies, group files,
# versions) is fuzzed for a minute, after the inputs that once failed are
# replayed. By hand: target/debug/roleout-fuzz --seconds 3600 (RELIABILITY.md).
cargo run --quiet --locked -p roleout-tests --bin roleout-fuzz -- \
    --seconds "${ROLEOUT_FUZZ_SECONDS:-60}" --replay tests/fuzz-regressions --crashes target/fuzz-crashes
