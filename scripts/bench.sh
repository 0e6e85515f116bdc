#!/bin/sh
# Runs Roleout's benchmarks (see BENCHMARKS.md): installs what the
# baselines need when missing, builds the release binaries, runs
# roleout-bench with any arguments given (e.g. --check, --only B1).
set -eu
cd "$(dirname "$0")/.."

missing=""
command -v slapd >/dev/null 2>&1 || [ -x /usr/sbin/slapd ] || missing="$missing slapd ldap-utils"
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing="$missing nginx"
command -v curl >/dev/null 2>&1 || missing="$missing curl"
if [ -n "$missing" ]; then
    echo "installing:$missing"
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq $missing
fi

cargo build --release -p roleout-tests --bin roleout-bench \
    -p roleout-builder --bin roleoutd \
    -p roleout-installer --bin roleout

echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.1f GB", $2/1048576}' /proc/meminfo)," \
    "$(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)"
exec target/release/roleout-bench "$@"
