#!/bin/sh
# Installs the Domino administration tools of the Roleout example catalog.
# Usage: install-admin-tools.sh ROOT SERVER LOG
set -eu
root=$1 server=$2 log=$3
mkdir -p "$root/opt/domino-admin/bin" "$(dirname "$log")"
cat > "$root/opt/domino-admin/bin/domino-admin" <<TOOL
#!/bin/sh
echo "Domino admin tools for $server"
TOOL
chmod 755 "$root/opt/domino-admin/bin/domino-admin"
echo "9.0.1" > "$root/opt/domino-admin/VERSION"
echo "domino-admin: tools configured for $server" >> "$log"
echo "Installation complete" >> "$log"
