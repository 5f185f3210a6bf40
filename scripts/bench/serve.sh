#!/usr/bin/env bash
# `ci-seed serve --listen` under a fleet's load, beside Debian's nginx serving the same seed
# tree on the same machine (issue 20). Loopback only (127.0.0.1), bounded in requests and
# time; never part of the tests. Prints a markdown table for docs/benchmarks.md.
#
#   scripts/bench/serve.sh [--clients N] [--requests N] [--runs N] [--no-build] [--out FILE]
#
#   --clients N   concurrent clients (default 256)
#   --requests N  requests per run (default 10000)
#   --runs N      runs per server, alternated ci-seed / nginx, each going first in turn
#                 (default 3; every run is shown)
#   --no-build    use target/release/ci-seed as it is (default: cargo build --release)
#   --out FILE    also write the markdown to FILE
# CI_SEED=PATH measures another ci-seed binary; NGINX=PATH another nginx binary.
#
# Load generator: ApacheBench (`ab`, Debian's apache2-utils): an exact request count, one
# new connection per request (HTTP/1.0, no keep-alive: what a clone's fetch does), latency
# percentiles from its `-e` CSV (connect to last byte, per request).
#
# nginx is Debian's package, *unpacked* into the work directory (`apt-get download nginx`,
# `dpkg-deb -x`), never installed: installing it would start the host's nginx service with
# the host's config. It runs in the foreground (`daemon off`) from a temporary config and
# prefix, on a free loopback port, as the same unprivileged user as ci-seed (`nobody` via
# setpriv when run as root). Nothing under /etc is read or written.
set -euo pipefail
cd "$(dirname "$0")/../.."
REPO=$PWD
CLIENTS=256; REQUESTS=10000; RUNS=3; BUILD=1; OUT=""
while [ $# -gt 0 ]; do
    case "$1" in
        --clients) CLIENTS=$2; shift 2 ;;
        --requests) REQUESTS=$2; shift 2 ;;
        --runs) RUNS=$2; shift 2 ;;
        --no-build) BUILD=0; shift ;;
        --out) OUT=$2; shift 2 ;;
        -h|--help) sed -n '2,24p' "$0"; exit 0 ;;
        *) echo "serve.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
log() { echo "[serve-bench] $*" >&2; }
command -v ab >/dev/null || { echo "serve.sh: ab is missing (Debian package apache2-utils)" >&2; exit 2; }

W=$(mktemp -d /tmp/ci-serve-bench.XXXXXX)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$W"
}
trap cleanup EXIT
chmod 0755 "$W"

# ---- the binaries ---------------------------------------------------------------------
if [ -n "${CI_SEED:-}" ]; then
    SEED_BIN=$CI_SEED
else
    [ "$BUILD" = 1 ] && cargo build --release --bin ci-seed >&2
    SEED_BIN=$REPO/target/release/ci-seed
fi
[ -x "$SEED_BIN" ] || { echo "serve.sh: no ci-seed binary at $SEED_BIN" >&2; exit 2; }
if [ -n "${NGINX:-}" ]; then
    NGINX_BIN=$NGINX
else
    log "unpacking Debian's nginx (apt-get download, never installed)"
    # (apt warns that root downloads unsandboxed into a directory _apt cannot write: harmless)
    (cd "$W" && apt-get download -q nginx 2>&1 >/dev/null | grep -v '^W: Download is performed unsandboxed' >&2 || true)
    ls "$W"/nginx_*.deb >/dev/null
    dpkg-deb -x "$W"/nginx_*.deb "$W/nginx-pkg"
    NGINX_BIN=$W/nginx-pkg/usr/sbin/nginx
fi
NGINX_VERSION=$("$NGINX_BIN" -v 2>&1 | sed 's/^nginx version: //')

# ---- the seed tree: a bootstrap script and one clone's NoCloud seed ---------------------
SRV=$W/srv
mkdir -p "$SRV/clone-0001"
cp benches/fixtures/standard-seed/user-data benches/fixtures/standard-seed/meta-data "$SRV/clone-0001/"
printf '#!/bin/sh\necho bootstrapped\n' > "$SRV/vm-bootstrap"
chmod -R a+rX "$SRV"
PATH_=/clone-0001/user-data
SIZE=$(wc -c < "$SRV$PATH_")

# Both servers run unprivileged: as nobody when this script is root.
AS=()
if [ "$(id -u)" = 0 ]; then
    AS=(setpriv --reuid=65534 --regid=65534 --clear-groups)
    mkdir -p "$W/run"; chown 65534:65534 "$W/run"
else
    mkdir -p "$W/run"
fi

free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# Starts a server, sets ADDR.
STARTS=0
start_ci_seed() {
    # A new file per start: reading the last run's file (before this one's redirection
    # truncates it) would give the address of a server that has already exited.
    STARTS=$((STARTS + 1))
    local out=$W/run/seed.$STARTS.out
    "${AS[@]}" "$SEED_BIN" serve --listen 127.0.0.1:0 --dir "$SRV" > "$out" 2> "$W/run/seed.$STARTS.log" &
    PIDS+=($!)
    for _ in $(seq 100); do
        ADDR=$(sed -n 's|^listening on http://\(127\.0\.0\.1:[0-9]*\)/$|\1|p' "$out" 2>/dev/null || true)
        [ -n "$ADDR" ] && return 0
        sleep 0.1
    done
    echo "serve.sh: ci-seed serve did not start" >&2; exit 1
}
start_nginx() {
    local port; port=$(free_port)
    mkdir -p "$W/run/nginx"
    cat > "$W/run/nginx/nginx.conf" <<EOF
daemon off;
worker_processes auto;
pid $W/run/nginx/nginx.pid;
error_log $W/run/nginx/error.log;
events { worker_connections 2048; }
http {
    access_log $W/run/nginx/access.log;
    client_body_temp_path $W/run/nginx/body;
    proxy_temp_path $W/run/nginx/proxy;
    fastcgi_temp_path $W/run/nginx/fastcgi;
    uwsgi_temp_path $W/run/nginx/uwsgi;
    scgi_temp_path $W/run/nginx/scgi;
    default_type application/octet-stream;
    sendfile on;
    keepalive_timeout 0;
    server {
        listen 127.0.0.1:$port;
        root $SRV;
    }
}
EOF
    [ "$(id -u)" = 0 ] && chown -R 65534:65534 "$W/run/nginx"
    "${AS[@]}" "$NGINX_BIN" -p "$W/run/nginx" -e "$W/run/nginx/error.log" -c "$W/run/nginx/nginx.conf" &
    PIDS+=($!)
    ADDR=127.0.0.1:$port
    for _ in $(seq 100); do
        up=$(ab -q -n 1 "http://$ADDR$PATH_" 2>/dev/null | sed -n 's/^Complete requests: *//p' || true)
        [ "$up" = 1 ] && return 0
        sleep 0.1
    done
    echo "serve.sh: nginx did not start (see its error log)" >&2; cat "$W/run/nginx/error.log" >&2; exit 1
}
stop_last() {
    local p=${PIDS[-1]}
    kill "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
    unset 'PIDS[-1]'
}

# One ab run against ADDR: prints "failed non2xx rps p50 p99 load".
measure() {
    local load out
    load=$(cut -d' ' -f1 /proc/loadavg)
    out=$(timeout 600 ab -q -r -s 60 -n "$REQUESTS" -c "$CLIENTS" -e "$W/pct.csv" "http://$ADDR$PATH_" 2>&1) ||
        { echo "$out" >&2; echo "serve.sh: ab failed" >&2; exit 1; }
    local complete failed non2xx rps p50 p99
    complete=$(sed -n 's/^Complete requests: *//p' <<<"$out")
    failed=$(sed -n 's/^Failed requests: *//p' <<<"$out")
    non2xx=$(sed -n 's/^Non-2xx responses: *//p' <<<"$out"); non2xx=${non2xx:-0}
    rps=$(sed -n 's/^Requests per second: *\([0-9.]*\).*/\1/p' <<<"$out")
    p50=$(awk -F, '$1=="50"{print $2}' "$W/pct.csv")
    p99=$(awk -F, '$1=="99"{print $2}' "$W/pct.csv")
    echo "$complete $failed $non2xx $rps $p50 $p99 $load"
}

UPTIME_START=$(uptime | sed 's/^ *//')
ROWS=()
for run in $(seq "$RUNS"); do
    # Alternate which server goes first, so neither always meets the machine's state first.
    order="ci-seed nginx"; [ $((run % 2)) = 0 ] && order="nginx ci-seed"
    for server in $order; do
        if [ "$server" = ci-seed ]; then start_ci_seed; else start_nginx; fi
        log "run $run: $server on $ADDR ($REQUESTS requests, $CLIENTS clients)"
        res=$(measure)
        read -r complete failed non2xx rps p50 p99 load <<<"$res"
        stop_last
        ROWS+=("| $server | $run | $complete | $((failed + non2xx)) | $(printf '%.0f' "$rps") | $(printf '%.1f' "$p50") | $(printf '%.1f' "$p99") | $load |")
    done
done

md=$(
    echo "Date: $(date -u '+%Y-%m-%d %H:%M UTC'); machine: $(nproc) x $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)"
    echo "($(uname -sr)); \`uptime\` at the start: $UPTIME_START; at the end: $(uptime | sed 's/^ *//')."
    echo "ci-seed: \`$SEED_BIN\` (\`serve --listen 127.0.0.1:0 --dir\`, default \`--max-conns\` 32); nginx $NGINX_VERSION (Debian's, \`worker_processes auto\`, access log on, \`keepalive_timeout 0\`)."
    echo "Load: \`ab -r -s 60 -n $REQUESTS -c $CLIENTS\` (ApacheBench $(ab -V | sed -n 's/^This is ApacheBench, Version \([^ ]*\).*/\1/p'), one connection per request) on \`GET $PATH_\` ($SIZE bytes); latency is connect to last byte."
    echo
    echo "| server | run | requests | failed | requests/s | p50 ms | p99 ms | load (1 min) at start |"
    echo "|---|---|---|---|---|---|---|---|"
    printf '%s\n' "${ROWS[@]}"
)
echo "$md"
[ -n "$OUT" ] && echo "$md" > "$OUT"
exit 0
