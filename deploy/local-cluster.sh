#!/usr/bin/env bash
# A local JetStream cluster of three nodes and several `funnel serve` processes on one machine.
#
#   deploy/local-cluster.sh start [N]   three nats-server nodes, then N (default 3) funnel serve
#   deploy/local-cluster.sh status      each process, and which leases each funnel serve holds
#   deploy/local-cluster.sh stop        stop what start started (by the ids it recorded)
#   deploy/local-cluster.sh clean       stop, then delete the data folder
#
# Settings (environment): FUNNEL_CLUSTER_DIR (default .funnel/local-cluster: data, logs, process
# ids), FUNNEL_BIN (default target/release/funnel, else target/debug/funnel, else `funnel` on PATH),
# NATS_SERVER (default .tools/bin/nats-server, else on PATH), NATS_PORT (first client port, default
# 4222; routes at NATS_PORT+2000, monitoring at NATS_PORT+4000), FUNNEL_PORT (first HTTP port,
# default 8081; /metrics without a token at FUNNEL_PORT+1000), FUNNEL_DEMO=1 (the first funnel
# serve loads the demo history, the others wait for it). Extra `funnel serve` settings go through
# FUNNEL__SECTION__KEY variables as usual (e.g. FUNNEL__STORE__LEASE_TTL_MS=5000).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
dir=${FUNNEL_CLUSTER_DIR:-$root/.funnel/local-cluster}
nats_port=${NATS_PORT:-4222}
funnel_port=${FUNNEL_PORT:-8081}

pick() { for c in "$@"; do if [ -x "$c" ]; then echo "$c"; return; fi; done; return 1; }
funnel_bin=${FUNNEL_BIN:-$(pick "$root/target/release/funnel" "$root/target/debug/funnel" || command -v funnel || true)}
nats_bin=${NATS_SERVER:-$(pick "$root/.tools/bin/nats-server" || command -v nats-server || true)}

store_url() {
    local urls=()
    for i in 1 2 3; do urls+=("nats://127.0.0.1:$((nats_port + i - 1))"); done
    (IFS=,; echo "${urls[*]}")
}

running() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

wait_for_process() { # what, seconds, pid file, command...: fails at once when the process ends
    local what=$1 secs=$2 pidfile=$3; shift 3
    for _ in $(seq $((secs * 10))); do
        if "$@" >/dev/null 2>&1; then return 0; fi
        if ! running "$pidfile"; then
            echo "$what exited before it came up; see $dir/logs" >&2
            log_tail "$pidfile"
            return 1
        fi
        sleep 0.1
    done
    echo "$what did not come up within ${secs}s; see $dir/logs" >&2
    log_tail "$pidfile"
    return 1
}

log_tail() { # pid file: the last lines of the process's log, on the standard error
    local log
    log="$dir/logs/$(basename "$1").log"
    if [ -f "$log" ]; then
        echo "--- the last lines of $log:" >&2
        tail -n 20 "$log" >&2
    fi
}

start_nats() {
    local i=$1 port=$((nats_port + $1 - 1))
    local routes=""
    for j in 1 2 3; do routes+="    nats-route://127.0.0.1:$((nats_port + 2000 + j - 1))"$'\n'; done
    mkdir -p "$dir/nats-$i"
    umask 077
    cat >"$dir/nats-$i.conf" <<CONF
server_name: funnel-$i
listen: 127.0.0.1:$port
http: 127.0.0.1:$((nats_port + 4000 + i - 1))
max_payload: 1MB
jetstream { store_dir: "$dir/nats-$i" }
cluster {
  name: funnel
  listen: 127.0.0.1:$((nats_port + 2000 + i - 1))
  routes: [
$routes  ]
}
CONF
    if running "$dir/pids/nats-$i"; then return; fi
    "$nats_bin" -c "$dir/nats-$i.conf" >>"$dir/logs/nats-$i.log" 2>&1 &
    echo $! >"$dir/pids/nats-$i"
}

start_funnel() {
    local i=$1 port=$((funnel_port + $1 - 1))
    local work="$dir/funnel-$i"
    mkdir -p "$work"
    if running "$dir/pids/funnel-$i"; then return; fi
    local args=(--store "$(store_url)" serve --listen "127.0.0.1:$port")
    if [ "${FUNNEL_DEMO:-0}" = 1 ] && [ "$i" = 1 ]; then args+=(--demo); fi
    # Every process of one log seals webhook secrets with the same key (made by the first).
    (cd "$work" && FUNNEL__HTTP__METRICS_LISTEN="127.0.0.1:$((port + 1000))" \
        FUNNEL__NOTIFY__WEBHOOK_KEY_FILE="$dir/webhooks.key" \
        exec "$funnel_bin" "${args[@]}" >>"$dir/logs/funnel-$i.log" 2>&1) &
    echo $! >"$dir/pids/funnel-$i"
}

cmd_start() {
    local n=${1:-3}
    [ -n "$funnel_bin" ] || { echo "no funnel binary: cargo build --release -p funnel-cli, or set FUNNEL_BIN" >&2; exit 1; }
    [ -n "$nats_bin" ] || { echo "no nats-server: scripts/install-nats-server.sh, or set NATS_SERVER" >&2; exit 1; }
    mkdir -p "$dir/logs" "$dir/pids"
    chmod 700 "$dir"
    for i in 1 2 3; do start_nats "$i"; done
    for i in 1 2 3; do
        wait_for_process "nats-server $i" 90 "$dir/pids/nats-$i" curl -sf "http://127.0.0.1:$((nats_port + 4000 + i - 1))/healthz?js-enabled-only=true"
    done
    # JetStream answers only once the cluster has elected its meta leader: the full health check
    # says so, and a funnel serve started before it would find JetStream unavailable.
    for i in 1 2 3; do
        wait_for_process "JetStream on nats-server $i" 120 "$dir/pids/nats-$i" curl -sf "http://127.0.0.1:$((nats_port + 4000 + i - 1))/healthz"
    done
    for i in $(seq 1 "$n"); do
        start_funnel "$i"
        # The first creates the log's streams (and loads the demo); the others follow.
        if [ "$i" = 1 ]; then wait_for_process "funnel serve 1" 600 "$dir/pids/funnel-1" curl -sf "http://127.0.0.1:$funnel_port/healthz"; fi
    done
    for i in $(seq 1 "$n"); do
        wait_for_process "funnel serve $i" 120 "$dir/pids/funnel-$i" curl -sf "http://127.0.0.1:$((funnel_port + i - 1))/healthz"
    done
    echo "store: $(store_url)"
    for i in $(seq 1 "$n"); do
        echo "funnel serve $i: http://127.0.0.1:$((funnel_port + i - 1))  (metrics: http://127.0.0.1:$((funnel_port + i + 999))/metrics, data: $dir/funnel-$i)"
    done
    echo "logs: $dir/logs"
}

cmd_status() {
    [ -d "$dir/pids" ] || { echo "not started ($dir)"; return; }
    for f in "$dir"/pids/*; do
        local name; name=$(basename "$f")
        if running "$f"; then
            local extra=""
            case $name in funnel-*)
                local i=${name#funnel-}
                extra=$(curl -s "http://127.0.0.1:$((funnel_port + i - 1))/readyz" || true)
            esac
            echo "$name: running (pid $(cat "$f")) $extra"
        else
            echo "$name: stopped"
        fi
    done
}

stop_matching() { # pattern: TERM, wait up to 15 s, then KILL the recorded processes
    for f in "$dir"/pids/$1; do
        [ -f "$f" ] || continue
        if running "$f"; then kill -TERM "$(cat "$f")" 2>/dev/null || true; fi
    done
    for f in "$dir"/pids/$1; do
        [ -f "$f" ] || continue
        for _ in $(seq 150); do running "$f" || break; sleep 0.1; done
        if running "$f"; then kill -KILL "$(cat "$f")" 2>/dev/null || true; fi
        rm -f "$f"
    done
}

cmd_stop() {
    [ -d "$dir/pids" ] || return 0
    # funnel serve first (it releases its leases on SIGTERM, which needs the cluster), then NATS.
    stop_matching 'funnel-*'
    stop_matching 'nats-*'
}

case "${1:-}" in
    start) shift; cmd_start "$@" ;;
    status) cmd_status ;;
    stop) cmd_stop ;;
    clean) cmd_stop; rm -rf "$dir" ;;
    *) sed -n '2,15p' "$0"; exit 2 ;;
esac
