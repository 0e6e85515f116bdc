#!/usr/bin/env bash
# The main job, end to end, on the embedded default. Installs what is
# missing first.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
export PATH="$HOME/.cargo/bin:$PATH"

cargo build --quiet --locked --workspace --bins
admin=target/debug/roleout-admin

echo "== Checking the example catalog's descriptors"
"$admin" check examples/*.xml
