#!/usr/bin/env bash
# The main job, end to end, on the embedded default: a managed local slapd,
# roleoutd, and three machines (an end user, a developer, an administrator)
# that each install their own version of the example suite into a sandbox
# root. Installs what is missing first. Running it again is quick and
# changes nothing: every component is reported as already installed.
#
# Everything lives under ROLEOUT_QUICKSTART_DIR (default ./roleout-state).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
source scripts/setup.sh
export PATH="$HOME/.cargo/bin:$PATH"

top=${ROLEOUT_QUICKSTART_DIR:-$repo/roleout-state}
mkdir -p "$top"
top=$(cd "$top" && pwd)
server_state=$top/server
port=${ROLEOUT_QUICKSTART_PORT:-8443}
url=https://127.0.0.1:$port

step() { printf '\n== %s\n' "$*"; }

step "Building Roleout"
cargo build --quiet --locked --workspace --bins
bin=$repo/target/debug
admin() { "$bin/roleout-admin" --state-dir "$server_state" "$@"; }

step "Checking the example catalog's descriptors"
"$bin/roleout-admin" check examples/*.xml

step "Building the example payloads (a .deb, tarballs, scripts)"
sh examples/payloads/build.sh "$top/payloads"

step "Starting roleoutd (it runs the managed slapd in $server_state/ldap)"
mkdir -p "$server_state"
"$bin/roleoutd" --state-dir "$server_state" --listen "127.0.0.1:$port" \
    --log "warn,roleout_builder=info" >"$top/roleoutd.log" 2>&1 &
roleoutd_pid=$!
stop_roleoutd() {
    kill "$roleoutd_pid" 2>/dev/null || true
    wait "$roleoutd_pid" 2>/dev/null || true
}
trap stop_roleoutd EXIT
for _ in $(seq 1 150); do
    if curl -fsS --cacert "$server_state/tls/cert.pem" "$url/v1/health" >/dev/null 2>&1; then
        break
    fi
    if ! kill -0 "$roleoutd_pid" 2>/dev/null; then
        echo "roleoutd stopped; its log:" >&2
        cat "$top/roleoutd.log" >&2
        exit 1
    fi
    sleep 0.2
done
curl -fsS --cacert "$server_state/tls/cert.pem" "$url/v1/health"
echo

step "Importing the catalog and its payloads; defining the roles"
admin -c "import examples/ --payloads $top/payloads"
# Roles are created once; a second run finds them.
if ! admin -c "role list" 2>/dev/null | grep -q '^administrator'; then
    admin -c "role create end-user --rank 10 --description 'Every employee';
              role create developer --rank 20 --parent end-user --description 'Builds Notes applications';
              role create administrator --rank 30 --parent end-user --description 'Runs the Domino servers'"
fi

step "Building the role suites"
admin -c "build domino"

machines=(pc-user:end-user pc-dev:developer pc-admin:administrator)
for entry in "${machines[@]}"; do
    name=${entry%%:*} role=${entry#*:}
    machine_dir=$top/machines/$name
    root=$machine_dir/root
    if [ ! -f "$machine_dir/state/enrolment.json" ]; then
        step "Enrolling $name in role $role"
        token=$(admin -c "enroll-token $name" 2>/dev/null)
        admin -c "role add-member $role $name"
        mkdir -p "$machine_dir/state"
        "$bin/roleout" --state-dir "$machine_dir/state" enroll --server "$url" \
            --server-cert "$server_state/tls/cert.pem" --token "$token" --name "$name"
        # The sandbox root: a dpkg database for dpkg --root, and /opt.
        mkdir -p "$root/var/lib/dpkg/info" "$root/var/lib/dpkg/updates" "$root/var/log" "$root/opt"
        touch "$root/var/lib/dpkg/status" "$root/var/lib/dpkg/available"
        if [ "$role" = administrator ]; then
            umask 077
            printf '[notes-client]\nadmin_password = "%s"\n' "$(head -c 12 /dev/urandom | base64)" \
                >"$machine_dir/response.toml"
            umask 022
        fi
    fi
    step "Installing on $name ($role)"
    response=()
    [ -f "$machine_dir/response.toml" ] && response=(--response-file "$machine_dir/response.toml")
    set +e
    "$bin/roleout" --state-dir "$machine_dir/state" install domino --root "$root" "${response[@]}"
    status=$?
    set -e
    echo "$status" >"$machine_dir/exit-status"
done

step "What each machine has"
outcome() {
    case $1 in
        0) echo "ok" ;; 1) echo "failed" ;; 3) echo "refused" ;; 4) echo "unreachable" ;;
        5) echo "reboot" ;; *) echo "exit $1" ;;
    esac
}
printf '%-10s %-14s %-8s %s\n' MACHINE ROLE OUTCOME "INSTALLED (version)"
for entry in "${machines[@]}"; do
    name=${entry%%:*} role=${entry#*:}
    machine_dir=$top/machines/$name
    components=$("$bin/roleout" --state-dir "$machine_dir/state" --json status |
        python3 -c 'import json, sys
items = []
for line in sys.stdin:
    if line.strip():
        for product, record in sorted(json.loads(line).get("installed", {}).items()):
            items.append("%s %s" % (product, record.get("version")))
print(", ".join(items) or "-")')
    printf '%-10s %-14s %-8s %s\n' "$name" "$role" "$(outcome "$(cat "$machine_dir/exit-status")")" "$components"
done

cat <<INFO

Reports are in the directory (ou=reports) and their logs in $server_state/content;
each machine's journal is in $top/machines/NAME/state, its sandbox in .../root,
and roleoutd's log in $top/roleoutd.log.

Open the admin shell on the same directory with:
    $bin/roleout-admin --state-dir $server_state
INFO
