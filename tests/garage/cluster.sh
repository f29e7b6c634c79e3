#!/usr/bin/env bash
# A three-node Garage cluster on loopback, for the S3 storage tests and for trying the S3 back-end by hand.
#
#   tests/garage/cluster.sh start DIR         start three nodes, lay them out, create a key and a bucket; prints
#                                             the environment (KEY=VALUE lines, also kept in DIR/env)
#   tests/garage/cluster.sh stop DIR          stop every node started in DIR
#   tests/garage/cluster.sh stop-node DIR N   stop node N (1-3) only
#   tests/garage/cluster.sh start-node DIR N  start node N again and wait until the cluster is whole
#   tests/garage/cluster.sh env DIR           print the environment again
#
# Node N listens on 127.0.0.(N+1): S3 API on port GARAGE_PORT_BASE (default 3900), RPC on GARAGE_PORT_BASE+1.
# Each node keeps its configuration, metadata, data, log and PID under DIR/nodeN. Replication factor 3 with
# consistency mode "consistent": reads and writes need 2 of the 3 nodes, so any one node may be down.
#
# With GARAGE_OWNER_PID set, start also leaves a watchdog that stops the nodes once that process is gone (a test
# run killed before it could stop the cluster leaves nothing behind).
#
# The garage binary: $GARAGE_BIN, else ~/.cache/ftp-ci/garage/bin/garage (where .ci/run installs it), else PATH.
# Processes are stopped by the PIDs kept in DIR, never by name. Every wait polls a condition against a deadline.
set -euo pipefail

PORT_BASE=${GARAGE_PORT_BASE:-3900}
BUCKET=ftp-test
REGION=garage
NODES=(1 2 3)
# Seconds any one wait may take (a node booting, the layout settling, a node stopping).
DEADLINE=${GARAGE_WAIT_SECS:-60}

die() {
    echo "cluster.sh: $*" >&2
    exit 1
}

find_garage() {
    if [ -n "${GARAGE_BIN:-}" ]; then
        [ -x "$GARAGE_BIN" ] || die "GARAGE_BIN=$GARAGE_BIN is not an executable"
        echo "$GARAGE_BIN"
    elif [ -x "$HOME/.cache/ftp-ci/garage/bin/garage" ]; then
        echo "$HOME/.cache/ftp-ci/garage/bin/garage"
    elif command -v garage >/dev/null 2>&1; then
        command -v garage
    else
        die "garage not found: set GARAGE_BIN, or install it as .ci/run does:" \
            "cargo install garage --locked --root ~/.cache/ftp-ci/garage"
    fi
}

ip_of() { echo "127.0.0.$(($1 + 1))"; }
conf_of() { echo "$DIR/node$1/garage.toml"; }
g() { # g N ARGS...: the garage CLI talking to node N
    local n=$1
    shift
    "$GARAGE" -c "$(conf_of "$n")" "$@"
}

hex() { od -An -tx1 -N"$1" /dev/urandom | tr -d ' \n'; }

# Polls "$@" until it succeeds or DEADLINE seconds pass; the pause between polls is short and the total bounded.
# Fails at once if a node that should be running has exited.
wait_for() {
    local what=$1
    shift
    local end=$((SECONDS + DEADLINE))
    until "$@" >/dev/null 2>&1; do
        check_alive
        ((SECONDS < end)) || die "timed out after ${DEADLINE}s waiting for $what"
        sleep 0.2
    done
}

# Every node with a PID file (started, not stopped) is running; otherwise fails with the end of its log (a port
# in use, a bad configuration).
check_alive() {
    local n
    for n in "${NODES[@]}"; do
        if [ -f "$DIR/node$n/pid" ] && [ -z "$(live_pid "$n")" ]; then
            die "node $n exited; the end of $DIR/node$n/log:"$'\n'"$(tail -n 5 "$DIR/node$n/log")"
        fi
        # A node whose S3 API could not start (its port taken) keeps running without it.
        if grep -q 'API server exited with error' "$DIR/node$n/log" 2>/dev/null; then
            die "node $n: $(grep -m1 'API server exited with error' "$DIR/node$n/log" | sed 's/.*ERROR[^ ]* *//')"
        fi
    done
}

# The PID in DIR/nodeN/pid if that process is alive and is this node's garage; empty otherwise.
live_pid() {
    local file="$DIR/node$1/pid" pid
    [ -f "$file" ] || return 0
    pid=$(cat "$file")
    [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 0
    # The PID may have been reused: it is ours only if its command line names this node's configuration.
    if tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$(conf_of "$1")"; then
        echo "$pid"
    fi
}

write_config() {
    local n=$1 ip
    ip=$(ip_of "$n")
    mkdir -p "$DIR/node$n/meta" "$DIR/node$n/data"
    cat >"$(conf_of "$n")" <<EOF
metadata_dir = "$DIR/node$n/meta"
data_dir = "$DIR/node$n/data"
db_engine = "lmdb"
# Test data: speed over durability across power loss.
metadata_fsync = false
data_fsync = false

replication_factor = 3
# Quorums of 2 for reads and writes: read-after-write consistency, and one node of three may be down.
consistency_mode = "consistent"

rpc_bind_addr = "$ip:$((PORT_BASE + 1))"
rpc_public_addr = "$ip:$((PORT_BASE + 1))"
rpc_bind_outgoing = true
rpc_secret = "$RPC_SECRET"

[s3_api]
s3_region = "$REGION"
api_bind_addr = "$ip:$PORT_BASE"
root_domain = ".s3.garage.localhost"
EOF
}

spawn_node() {
    local n=$1
    [ -z "$(live_pid "$n")" ] || die "node $n is already running (PID $(live_pid "$n"))"
    # stdin, stdout and stderr away from the caller, so that a caller reading our output sees its end. At a lower
    # priority (GARAGE_NICE, default 10): on a small machine the store yields the CPU to the servers and clients
    # whose latency other tests measure at the same time.
    NO_COLOR=1 RUST_LOG=${GARAGE_LOG:-garage=warn} nice -n "${GARAGE_NICE:-10}" "$GARAGE" -c "$(conf_of "$n")" server \
        </dev/null >>"$DIR/node$n/log" 2>&1 &
    echo $! >"$DIR/node$n/pid"
}

node_id() { g "$1" node id -q 2>/dev/null; }


# Every node sees all three storage nodes up.
whole() {
    local n
    for n in "${NODES[@]}"; do
        g "$n" json-api GetClusterHealth 2>/dev/null | grep -q '"storageNodesUp": 3' || return 1
        g "$n" json-api GetClusterHealth 2>/dev/null | grep -q '"status": "healthy"' || return 1
    done
}

connected() { # connected N: node N sees all three nodes connected
    g "$1" json-api GetClusterHealth 2>/dev/null | grep -q '"connectedNodes": 3'
}

print_env() {
    [ -f "$DIR/env" ] || die "no cluster environment in $DIR (start it first)"
    cat "$DIR/env"
}

stop_node() {
    local n=$1 pid end
    pid=$(live_pid "$n")
    if [ -z "$pid" ]; then
        rm -f "$DIR/node$n/pid"
        return 0
    fi
    kill -TERM "$pid" 2>/dev/null || true
    end=$((SECONDS + DEADLINE))
    while kill -0 "$pid" 2>/dev/null && [ -n "$(live_pid "$n")" ]; do
        if ((SECONDS >= end)); then
            echo "cluster.sh: node $n (PID $pid) ignored SIGTERM for ${DEADLINE}s; killing it" >&2
            kill -KILL "$pid" 2>/dev/null || true
            break
        fi
        sleep 0.1
    done
    rm -f "$DIR/node$n/pid"
}

# A background process that stops the nodes once process $1 has exited; its PID is kept in DIR/watchdog.pid.
spawn_watchdog() {
    local owner=$1
    (
        # Polls the owner's existence once a second: a watchdog, not a synchronisation.
        while kill -0 "$owner" 2>/dev/null; do sleep 1; done
        for n in "${NODES[@]}"; do stop_node "$n"; done
        rm -f "$DIR/watchdog.pid"
    ) </dev/null >/dev/null 2>&1 &
    echo $! >"$DIR/watchdog.pid"
}

stop_watchdog() {
    local file="$DIR/watchdog.pid" pid
    [ -f "$file" ] || return 0
    pid=$(cat "$file")
    # Ours only if it is still this script's process for this DIR (the PID may have been reused).
    if [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$DIR"; then
        kill -TERM "$pid" 2>/dev/null || true
    fi
    rm -f "$file"
}

start() {
    mkdir -p "$DIR"
    DIR=$(cd "$DIR" && pwd)
    local n
    for n in "${NODES[@]}"; do
        [ -z "$(live_pid "$n")" ] || die "$DIR already has a running node $n; stop it first"
    done
    RPC_SECRET=$(hex 32)
    for n in "${NODES[@]}"; do
        write_config "$n"
        spawn_node "$n"
    done
    # If anything below fails (a command, or a wait that timed out), leave nothing running.
    STARTED=0
    trap 'if [ "${STARTED:-0}" = 0 ]; then
              echo "cluster.sh: start failed; stopping the nodes (logs in $DIR/node*/log)" >&2
              for n in "${NODES[@]}"; do stop_node "$n"; done
          fi' EXIT

    local ids=()
    for n in "${NODES[@]}"; do
        wait_for "node $n to answer" node_id "$n"
        ids+=("$(node_id "$n")")
    done
    # Node 1 introduces itself to the others; they learn of each other through it.
    for n in 2 3; do
        wait_for "node 1 to connect to node $n" g 1 node connect "${ids[$((n - 1))]}"
    done
    for n in "${NODES[@]}"; do
        wait_for "node $n to see all three nodes" connected "$n"
    done

    # One zone per node, so that the three copies of each partition sit on three different nodes.
    for n in "${NODES[@]}"; do
        g 1 layout assign -z "dc$n" -c 1G "${ids[$((n - 1))]%@*}" >/dev/null
    done
    g 1 layout apply --version 1 >/dev/null
    wait_for "the layout to be applied on every node" whole

    local key_id secret
    key_id="GK$(hex 12)"
    secret=$(hex 32)
    g 1 key import --yes -n ftp-test "$key_id" "$secret" >/dev/null
    g 1 bucket create "$BUCKET" >/dev/null
    g 1 bucket allow --read --write --owner "$BUCKET" --key "$key_id" >/dev/null
    STARTED=1
    if [ -n "${GARAGE_OWNER_PID:-}" ]; then
        spawn_watchdog "$GARAGE_OWNER_PID"
    fi

    {
        echo "GARAGE_S3_ENDPOINT=http://$(ip_of 1):$PORT_BASE"
        echo "GARAGE_S3_ENDPOINTS=http://$(ip_of 1):$PORT_BASE http://$(ip_of 2):$PORT_BASE http://$(ip_of 3):$PORT_BASE"
        echo "GARAGE_S3_REGION=$REGION"
        echo "GARAGE_BUCKET=$BUCKET"
        echo "AWS_ACCESS_KEY_ID=$key_id"
        echo "AWS_SECRET_ACCESS_KEY=$secret"
    } >"$DIR/env"
    print_env
}

[ $# -ge 2 ] || die "usage: $0 start|stop|env DIR, or $0 stop-node|start-node DIR N"
cmd=$1
DIR=$2
# Absolute, so that a node's command line (which names its configuration) matches however DIR was spelled.
if [ -d "$DIR" ]; then DIR=$(cd "$DIR" && pwd); fi
case "$cmd" in
start)
    GARAGE=$(find_garage)
    start
    ;;
stop)
    [ -d "$DIR" ] || exit 0
    stop_watchdog
    for n in "${NODES[@]}"; do stop_node "$n"; done
    ;;
stop-node | start-node)
    [ $# -eq 3 ] && [[ "$3" =~ ^[123]$ ]] || die "$cmd needs a node number 1-3"
    [ -f "$(conf_of "$3")" ] || die "no node $3 in $DIR"
    if [ "$cmd" = stop-node ]; then
        stop_node "$3"
    else
        GARAGE=$(find_garage)
        PORT_BASE=$(sed -n 's/^api_bind_addr = ".*:\([0-9]*\)"$/\1/p' "$(conf_of "$3")")
        spawn_node "$3"
        wait_for "node $3 to answer" node_id "$3"
        # The others would retry the connection on their own, after a while; ask at once.
        for n in "${NODES[@]}"; do
            [ "$n" = "$3" ] || wait_for "node $n to reconnect to node $3" g "$n" node connect "$(node_id "$3")"
        done
        wait_for "the cluster to be whole again" whole
    fi
    ;;
env)
    print_env
    ;;
*)
    die "unknown command $cmd; usage: $0 start|stop|env DIR, or $0 stop-node|start-node DIR N"
    ;;
esac
