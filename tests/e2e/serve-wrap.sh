#!/bin/sh
# Spawned by qemu's slirp once per guest connection to 10.0.2.100:80 (boot.sh --serve);
# stdin/stdout are the connection. Records the request time, then lets the project's
# own server answer: `ci-seed serve --stdio SCRIPT`.
#   serve-wrap.sh REQUEST_LOG CI_SEED_BIN SCRIPT
set -eu
echo "$(date +%s.%N) request" >> "$1"
exec "$2" serve --stdio "$3" 2>> "$1.err"
