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
