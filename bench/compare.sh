#!/usr/bin/env bash
# Compares ftpserver with vsftpd, pure-ftpd and pyftpdlib on this machine, driving every server with ftpload.
#
#   bench/compare.sh            the full run: three repetitions of every scenario (about 35 minutes on 2 cores,
#                               estimated: 27 before get-1000 and get-tls were added)
#   bench/compare.sh --quick    every scenario at a small scale, once (about 2 minutes): checks the script
#   bench/compare.sh --reps N   the full scale with N repetitions instead of three
#   bench/compare.sh --only put,small
#                               only these scenarios (idle, small, get, get-1000, ramp, put, get-tls); with --reps,
#                               to look at one scenario's spread without the 35 minutes of the rest
#
# Servers (each on 127.0.0.1, a free port, anonymous read and write, rooted in a prepared directory holding
# big.bin, mid.bin and small.bin): ours at its default flags, vsftpd, pure-ftpd and pyftpdlib. Scenarios: idle
# sessions (memory per session from /proc, NOOP latency meanwhile), get (with a bystander session's NOOP latency),
# get-1000 (1,000 clients downloading mid.bin for 15 s, with the bystander), put, small, ramp, get-tls (get over
# explicit FTPS: ours, vsftpd and pyftpdlib, with a self-signed certificate made by openssl), and the loopback
# reference (TCP between threads, no FTP). Around every scenario the CPU time of the server's process tree is read
# from /proc, so the transfers report server CPU seconds per GiB moved. Repetitions are interleaved: repetition 1
# runs every server, then repetition 2, and so on, so slow drift of the machine spreads over all servers alike.
#
# Needs root (it installs the peers with apt-get and pip when missing, and runs pure-ftpd in a private mount and PID
# namespace with the data directory bound onto the home of the `ftp` user) and a Debian-like system. Network traffic
# is to 127.0.0.1 only, apart from the package installs. Every process it starts is stopped by its PID on exit.
# Results: bench/results/<UTC time>/ holds raw.jsonl (one line per run: the ftpload report plus what was measured
# around it), table.md (medians) and the server logs.

set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$HERE")
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$REPO/target}"
BIN="$CARGO_TARGET_DIR/release"

QUICK=0
REPS_ASKED=""
ONLY=""
while (($#)); do
    arg=$1
    shift
    case "$arg" in
        --quick) QUICK=1 ;;
        --reps)
            REPS_ASKED=${1:-}
            shift || true
            [[ "$REPS_ASKED" =~ ^[1-9][0-9]*$ ]] || {
                echo "compare.sh: --reps needs a number of repetitions" >&2
                exit 2
            }
            ;;
        --only)
            ONLY=${1:-}
            shift || true
            [[ "$ONLY" =~ ^(idle|small|get|get-1000|ramp|put|get-tls)(,(idle|small|get|get-1000|ramp|put|get-tls))*$ ]] || {
                echo "compare.sh: --only needs scenarios separated by commas: idle, small, get, get-1000, ramp, put, get-tls" >&2
                exit 2
            }
            ;;
        -h | --help)
            sed -n '2,/^$/s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"
            exit 0
            ;;
        *)
            echo "compare.sh: unknown argument $arg (try --help)" >&2
            exit 2
            ;;
    esac
done

# ---- scale ---------------------------------------------------------------------------------------------------------

SERVERS=(ours vsftpd pure-ftpd pyftpdlib)
if [[ "$QUICK" == 1 ]]; then
    REPS=1
    IDLE_SIZES=(200)
    IDLE_HOLD=4
    BIG_MIB=8
    MID_MIB=2
    GET_ARGS=(-c 4 -n 1 --probe-interval 10)
    GET1000_ARGS=(-c 50 --probe-interval 10)
    GET1000_SECS=3
    PUT_ARGS=(-c 4 -n 1 --size 4M)
    SMALL_ARGS=(-c 4 -n 50)
    RAMP_ARGS=(--rate 1M --step-interval 50 --window 500 --max-sessions 20 --duration 4)
    LOOPBACK_SECS=1
else
    REPS=3
    IDLE_SIZES=(1000 10000)
    IDLE_HOLD=8
    BIG_MIB=64
    MID_MIB=8
    GET_ARGS=(-c 64 -n 2 --probe-interval 10)
    # For a time rather than once each: a client's throughput is then its bytes over the same span as everyone's,
    # and not decided by when it happened to log in (once each, the first few to log in download alone).
    GET1000_ARGS=(-c 1000 --probe-interval 10)
    GET1000_SECS=15
    # 1 GiB per run (about 0.4 s for the fastest): at 512 MiB a run lasted 0.2 s and the last few uploads, finishing
    # alone, decided too much of it. Larger would leave more dirty pages than the kernel's background threshold.
    PUT_ARGS=(-c 16 -n 4 --size 16M)
    SMALL_ARGS=(-c 64 -n 200)
    # ftpload's ramp runs on one loop per core; with one, its thread was the limit at about 2,400 sessions for
    # ours and for pyftpdlib. 5,000 is above what any server holds here, so the cap never decides.
    RAMP_ARGS=(--rate 1M --step-interval 15 --window 1000 --max-sessions 5000 --duration 90)
    LOOPBACK_SECS=5
fi
[[ -n "$REPS_ASKED" ]] && REPS=$REPS_ASKED
# The servers get-tls runs against: those serving explicit FTPS with the run's certificate.
TLS_SERVERS=(ours vsftpd pyftpdlib)
# The connection limits every server is started with, for the table's notes: all well above the 1,000 clients of
# get-1000 and the 10,000 sessions of idle, so no server refuses for want of configuration.
LIMITS="ours --max-connections 20000; vsftpd max_clients=0, max_per_ip=0 (no limit); pure-ftpd -c 20000 -C 20000; \
pyftpdlib max_cons 20000, max_cons_per_ip 0 (no limit)"
# Longest a transfer scenario may run (ftpload stops by itself here) and the outer limit on any ftpload run.
RUN_CAP=120
OUTER_LIMIT=300
# Longest a server may take to accept connections, and to exit after SIGTERM before it is killed.
START_LIMIT=20
STOP_LIMIT=15
# The idle opening phase lasts at most a minute (ftpload's own cap); the watcher waits that long plus a margin.
IDLE_WATCH_LIMIT=90
# Before small, wait (at most SETTLE_LIMIT seconds) until fewer than SETTLE_TIME_WAIT sockets linger in TIME_WAIT,
# so every server starts it from the same state rather than from the ports its predecessor left behind.
SETTLE_TIME_WAIT=5000
SETTLE_LIMIT=70

# ---- state and cleanup ---------------------------------------------------------------------------------------------

STAMP=$(date -u +%Y%m%dT%H%M%SZ)
RESULTS="$HERE/results/$STAMP$([[ "$QUICK" == 1 ]] && echo -quick || true)"
WORK=""
RAW=""
# The running server: which instance, the PID to signal, the root of its process tree, its port, its log, and why it
# did not start.
SRV_NAME=""
SRV_PID=""
SRV_TREE=""
SRV_PORT=""
SRV_LOG=""
SRV_FAIL=""
# PIDs of running ftpload/watch processes, stopped on exit.
CHILDREN=()
PURE_FTPD=""
FTP_HOME=""
declare -A UNAVAILABLE=()
# Each instance's listen backlog as the kernel holds it (ss: Send-Q of the listening socket), for the notes: a short
# one loses connections when get-1000's clients all connect at once.
declare -A BACKLOG=()

log() { printf '[%s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

cleanup() {
    local status=$?
    trap - EXIT INT TERM
    [[ "$status" == 0 ]] || log "stopping (status $status): the load and the server, by PID"
    local pid
    for pid in "${CHILDREN[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    stop_server || true
    if [[ -n "$WORK" && -d "$WORK" ]]; then
        rm -rf -- "$WORK"
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---- setup ---------------------------------------------------------------------------------------------------------

build() {
    log "building the release binaries (CARGO_TARGET_DIR=$CARGO_TARGET_DIR)"
    (cd "$REPO" && timeout 3600 cargo build --release --workspace --bins --quiet)
    local b
    for b in ftpserver ftpload; do
        [[ -x "$BIN/$b" ]] || { echo "compare.sh: $BIN/$b was not built" >&2; exit 1; }
    done
}

APT_UPDATED=0
apt_update() {
    if [[ "$APT_UPDATED" == 0 ]]; then
        log "apt-get update"
        timeout 600 apt-get update -qq || log "apt-get update failed; trying with the package lists at hand"
        APT_UPDATED=1
    fi
}

# vsftpd from its package; pure-ftpd installed when that removes nothing, otherwise (it conflicts with vsftpd:
# both provide ftp-server) unpacked into the work directory; pyftpdlib with pip.
install_peers() {
    if [[ ! -x /usr/sbin/vsftpd ]]; then
        apt_update
        log "installing vsftpd"
        DEBIAN_FRONTEND=noninteractive timeout 900 apt-get install -y -qq vsftpd >/dev/null ||
            log "installing vsftpd failed"
    fi
    [[ -x /usr/sbin/vsftpd ]] || UNAVAILABLE[vsftpd]="vsftpd is not installed and apt-get install vsftpd failed"

    if [[ -x /usr/sbin/pure-ftpd ]]; then
        PURE_FTPD=/usr/sbin/pure-ftpd
    else
        apt_update
        if timeout 120 apt-get install -s pure-ftpd 2>/dev/null | grep -q '^Remv'; then
            log "pure-ftpd conflicts with an installed package; unpacking it into $WORK/pure-ftpd instead"
            mkdir -p "$WORK/debs" "$WORK/pure-ftpd"
            if (cd "$WORK/debs" && timeout 300 apt-get download -qq pure-ftpd 2>/dev/null) &&
                dpkg -x "$WORK"/debs/pure-ftpd_*.deb "$WORK/pure-ftpd"; then
                PURE_FTPD="$WORK/pure-ftpd/usr/sbin/pure-ftpd"
            fi
        else
            log "installing pure-ftpd"
            DEBIAN_FRONTEND=noninteractive timeout 900 apt-get install -y -qq pure-ftpd >/dev/null ||
                log "installing pure-ftpd failed"
            [[ -x /usr/sbin/pure-ftpd ]] && PURE_FTPD=/usr/sbin/pure-ftpd
        fi
    fi
    FTP_HOME=$(getent passwd ftp | cut -d: -f6 || true)
    if [[ -z "$PURE_FTPD" || ! -x "$PURE_FTPD" ]]; then
        UNAVAILABLE[pure-ftpd]="pure-ftpd could not be installed or unpacked"
    elif ldd "$PURE_FTPD" | grep -q 'not found'; then
        UNAVAILABLE[pure-ftpd]="pure-ftpd lacks libraries: $(ldd "$PURE_FTPD" | grep 'not found' | tr -s ' \n' ' ')"
    elif [[ -z "$FTP_HOME" || ! -d "$FTP_HOME" ]]; then
        UNAVAILABLE[pure-ftpd]="no system user ftp with a home directory (pure-ftpd serves anonymous users from it)"
    fi

    if ! python3 -c 'import pyftpdlib' 2>/dev/null; then
        log "installing pyftpdlib"
        timeout 600 python3 -m pip install -q pyftpdlib || log "pip install pyftpdlib failed"
    fi
    python3 -c 'import pyftpdlib' 2>/dev/null || UNAVAILABLE[pyftpdlib]="pyftpdlib is not importable"

    local name
    for name in "${!UNAVAILABLE[@]}"; do
        log "unavailable: $name: ${UNAVAILABLE[$name]}"
    done
}

# The data every server serves: one directory per server (the files hard-linked), since each needs other owners and
# modes. vsftpd refuses a writable anonymous root, so its root is read-only and its uploads go to a second instance.
prepare_data() {
    log "preparing the data: big.bin ($BIG_MIB MiB), mid.bin ($MID_MIB MiB), small.bin (4 KiB)"
    mkdir -p "$WORK/data"
    head -c "$((BIG_MIB << 20))" /dev/urandom >"$WORK/data/big.bin"
    head -c "$((MID_MIB << 20))" /dev/urandom >"$WORK/data/mid.bin"
    head -c 4096 /dev/urandom >"$WORK/data/small.bin"
    chmod 644 "$WORK/data/big.bin" "$WORK/data/mid.bin" "$WORK/data/small.bin"
    local name
    for name in ours vsftpd vsftpd-put pure-ftpd pyftpdlib; do
        mkdir -p "$WORK/roots/$name"
        ln "$WORK/data/big.bin" "$WORK/data/mid.bin" "$WORK/data/small.bin" "$WORK/roots/$name/"
        chmod 777 "$WORK/roots/$name"
    done
    chmod 555 "$WORK/roots/vsftpd"
    chown ftp:ftp "$WORK/roots/vsftpd-put" 2>/dev/null || true
    chmod 755 "$WORK/roots/vsftpd-put"
    mkdir -p "$WORK/empty"
    chmod 555 "$WORK/empty"
}

# A self-signed certificate for 127.0.0.1 (RSA 2048), for the FTPS servers of get-tls; readable by the ftp user,
# whom vsftpd's session processes run as.
make_cert() {
    log "making a self-signed certificate for get-tls"
    mkdir -p "$WORK/tls"
    timeout 60 openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=127.0.0.1 \
        -addext subjectAltName=IP:127.0.0.1 -keyout "$WORK/tls/key.pem" -out "$WORK/tls/cert.pem" 2>/dev/null
    chmod 755 "$WORK/tls"
    chmod 644 "$WORK/tls/cert.pem" "$WORK/tls/key.pem"
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# ---- servers -------------------------------------------------------------------------------------------------------

# True while PID exists and is not a zombie.
running() {
    local state
    state=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 1
    [[ -n "$state" && "$state" != Z ]]
}

# Waits until the port accepts a connection; fails if PID exits first or the limit passes.
wait_accepting() {
    local port=$1 pid=$2 i
    for ((i = 0; i < START_LIMIT * 10; i++)); do
        running "$pid" || return 1
        if timeout 1 bash -c "exec 3<>/dev/tcp/127.0.0.1/$port" 2>/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    return 1
}

vsftpd_config() {
    local port=$1 root=$2 unprivileged=$3 tls=${4:-0}
    cat <<EOF
listen=YES
listen_ipv6=NO
listen_address=127.0.0.1
listen_port=$port
background=NO
anonymous_enable=YES
local_enable=NO
no_anon_password=YES
anon_root=$root
write_enable=YES
anon_upload_enable=YES
anon_mkdir_write_enable=YES
anon_other_write_enable=YES
anon_umask=022
pasv_enable=YES
port_enable=YES
connect_from_port_20=NO
seccomp_sandbox=NO
isolate=NO
isolate_network=NO
secure_chroot_dir=$WORK/empty
xferlog_enable=NO
dirmessage_enable=NO
use_localtime=NO
max_clients=0
max_per_ip=0
idle_session_timeout=600
data_connection_timeout=120
EOF
    if [[ "$unprivileged" == 1 ]]; then
        # Run as the ftp user, with neither chroot nor privileged helper: the only way vsftpd lets anonymous
        # sessions write to their root directory, which is where ftpload's uploads go.
        echo "run_as_launching_user=YES"
    fi
    if [[ "$tls" == 1 ]]; then
        # Explicit FTPS for anonymous sessions too; data connections need not resume the control's TLS session
        # (ftpload's client does not promise to).
        cat <<EOF
ssl_enable=YES
allow_anon_ssl=YES
force_anon_logins_ssl=YES
force_anon_data_ssl=YES
require_ssl_reuse=NO
rsa_cert_file=$WORK/tls/cert.pem
rsa_private_key_file=$WORK/tls/key.pem
EOF
    fi
}

# Starts instance NAME; sets SRV_*. Returns 1 (with the reason in SRV_FAIL) if it does not come up.
start_server() {
    local name=$1 port root
    SRV_NAME=$name SRV_PID="" SRV_TREE="" SRV_PORT="" SRV_FAIL=""
    SRV_LOG="$RESULTS/logs/$name.log"
    mkdir -p "$RESULTS/logs"
    echo "---- start $(date -u +%H:%M:%S)" >>"$SRV_LOG"
    case "$name" in
        ours | ours-tls)
            # Default flags: defaults are what users run. OURS_FLAGS adds any for an experiment.
            local chunk=(${OURS_FLAGS:-})
            [[ "$name" == ours-tls ]] && chunk+=(--tls-cert "$WORK/tls/cert.pem" --tls-key "$WORK/tls/key.pem")
            # The ready line is looked for only in what this start writes: the log holds the earlier starts too.
            local i line from
            from=$(($(stat -c %s "$SRV_LOG") + 1))
            # Warnings only, like the peers (no transfer log): a log line per session and transfer is not the
            # subject of the measurement.
            RUST_LOG=warn "$BIN/ftpserver" 0 --root "$WORK/roots/ours" --max-connections 20000 "${chunk[@]}" \
                </dev/null >>"$SRV_LOG" 2>&1 &
            SRV_PID=$! SRV_TREE=$SRV_PID
            for ((i = 0; i < START_LIMIT * 10; i++)); do
                line=$(tail -c "+$from" "$SRV_LOG" | grep -a -m1 '^ftpserver listening on ' || true)
                if [[ -n "$line" ]]; then
                    port=${line#ftpserver listening on *:}
                    SRV_PORT=${port%%,*}
                    break
                fi
                running "$SRV_PID" || break
                sleep 0.1
            done
            ;;
        vsftpd | vsftpd-put | vsftpd-tls)
            port=$(free_port)
            local conf="$WORK/$name.conf" unprivileged=0 root="$WORK/roots/vsftpd" tls=0
            [[ "$name" == vsftpd-put ]] && unprivileged=1 root="$WORK/roots/vsftpd-put"
            [[ "$name" == vsftpd-tls ]] && tls=1
            vsftpd_config "$port" "$root" "$unprivileged" "$tls" >"$conf"
            # vsftpd writes its fatal errors ("500 OOPS: ...") to descriptor 0, as if it were a control connection.
            : >"$WORK/$name.oops"
            if [[ "$unprivileged" == 1 ]]; then
                chown ftp "$conf" "$WORK/$name.oops"
                setpriv --reuid=ftp --regid=ftp --clear-groups /usr/sbin/vsftpd "$conf" \
                    <>"$WORK/$name.oops" >>"$SRV_LOG" 2>&1 &
            else
                /usr/sbin/vsftpd "$conf" <>"$WORK/$name.oops" >>"$SRV_LOG" 2>&1 &
            fi
            SRV_PID=$! SRV_TREE=$SRV_PID SRV_PORT=$port
            ;;
        pure-ftpd)
            port=$(free_port)
            # A private mount namespace binds the data directory onto the ftp user's home (where pure-ftpd serves
            # anonymous users from) without changing the system; a private PID namespace makes pure-ftpd the
            # reaper of its own orphaned session processes, and takes them all down when it ends.
            # Flags: -S bind, -c/-C most clients in all/per address, -e anonymous only, -M anonymous may create
            # directories, -H no reverse lookups, -A chroot everyone, -f none: no syslog.
            unshare --mount --pid --fork --kill-child=SIGKILL --propagation private \
                sh -c 'mount --bind "$1" "$2" && exec "$3" -S "127.0.0.1,$4" -c 20000 -C 20000 -e -M -H -A -f none' \
                sh "$WORK/roots/pure-ftpd" "$FTP_HOME" "$PURE_FTPD" "$port" </dev/null >>"$SRV_LOG" 2>&1 &
            SRV_TREE=$! SRV_PORT=$port
            # The PID to signal is pure-ftpd itself, unshare's child: unshare ignores SIGTERM.
            local i
            for ((i = 0; i < START_LIMIT * 10; i++)); do
                SRV_PID=$(tr -s ' ' '\n' <"/proc/$SRV_TREE/task/$SRV_TREE/children" 2>/dev/null | head -n1 || true)
                [[ -n "$SRV_PID" ]] && break
                running "$SRV_TREE" || break
                sleep 0.1
            done
            [[ -n "$SRV_PID" ]] || SRV_PID=$SRV_TREE
            ;;
        pyftpdlib | pyftpdlib-tls)
            port=$(free_port)
            local tls_files=()
            [[ "$name" == pyftpdlib-tls ]] && tls_files=("$WORK/tls/cert.pem" "$WORK/tls/key.pem")
            python3 "$HERE/pyftpd.py" "$port" "$WORK/roots/pyftpdlib" "${tls_files[@]}" </dev/null >>"$SRV_LOG" 2>&1 &
            SRV_PID=$! SRV_TREE=$SRV_PID SRV_PORT=$port
            ;;
    esac
    if [[ -z "$SRV_PORT" ]] || ! wait_accepting "$SRV_PORT" "$SRV_PID"; then
        SRV_FAIL="did not accept connections within ${START_LIMIT}s: $(server_words)"
        stop_server
        return 1
    fi
    BACKLOG[$name]=$(ss -ltnH "sport = :$SRV_PORT" 2>/dev/null | awk '{print $3; exit}')
    log "started $name: pid $SRV_PID, port $SRV_PORT, listen backlog ${BACKLOG[$name]:-unknown}"
}

# The last lines the server wrote, on one line.
server_words() {
    {
        tail -n 3 "$SRV_LOG" 2>/dev/null
        cat "$WORK/$SRV_NAME.oops" 2>/dev/null
    } | grep -v '^---- start' | tr -s '\r\n' '  ' | cut -c1-300
}

# Stops the running server by its PID (SIGTERM, then SIGKILL after STOP_LIMIT), and any of its session processes
# left behind.
stop_server() {
    [[ -n "$SRV_TREE" ]] || return 0
    local tree pid i
    tree=$(python3 "$HERE/procstat.py" tree "$SRV_TREE" 2>/dev/null || true)
    kill -TERM "$SRV_PID" 2>/dev/null || true
    for ((i = 0; i < STOP_LIMIT * 10; i++)); do
        running "$SRV_TREE" || break
        sleep 0.1
    done
    if running "$SRV_TREE"; then
        log "$SRV_NAME did not exit within ${STOP_LIMIT}s of SIGTERM; killing it"
        kill -KILL "$SRV_TREE" "$SRV_PID" 2>/dev/null || true
    fi
    wait "$SRV_TREE" 2>/dev/null || true
    for pid in $tree; do
        if running "$pid"; then
            kill -KILL "$pid" 2>/dev/null || true
        fi
    done
    SRV_NAME="" SRV_PID="" SRV_TREE="" SRV_PORT=""
}

# Makes sure instance NAME is the one running; returns 1 if it cannot be started.
use_server() {
    local name=$1
    if [[ "$SRV_NAME" == "$name" ]] && running "$SRV_TREE"; then
        return 0
    fi
    stop_server
    start_server "$name"
}

# ---- runs ----------------------------------------------------------------------------------------------------------

# Appends one line to raw.jsonl: the run's identity, ftpload's exit status and report, and what was measured around.
record() {
    python3 "$HERE/report.py" record "$RAW" "$@"
}

# Runs ftpload with a hard outer limit; stdout and stderr into $1.out and $1.err. It runs in the background and is
# waited for, because bash handles a signal only once the foreground command has ended: so an interrupted run
# stops at once.
load() {
    local out=$1 pid status=0
    shift
    timeout --kill-after=10 "$OUTER_LIMIT" "$BIN/ftpload" "$@" --json >"$out.out" 2>"$out.err" &
    pid=$!
    CHILDREN=("$pid")
    wait "$pid" || status=$?
    CHILDREN=()
    return "$status"
}

# Runs scenario SCEN of repetition REP against SERVER and records it.
run_scenario() {
    local rep=$1 server=$2 scen=$3
    local instance=$server
    [[ "$server" == vsftpd && "$scen" == put ]] && instance=vsftpd-put
    [[ "$scen" == get-tls ]] && instance=$server-tls
    local base="$WORK/run"
    rm -f "$base".*
    if [[ -n "${UNAVAILABLE[$server]:-}" ]]; then
        record --rep "$rep" --server "$server" --scenario "$scen" --note "unavailable: ${UNAVAILABLE[$server]}"
        return 0
    fi
    if ! use_server "$instance"; then
        log "$instance: $SRV_FAIL"
        record --rep "$rep" --server "$server" --scenario "$scen" --note "server did not start: $SRV_FAIL"
        return 0
    fi
    local status=0 extra=() tw=""
    if [[ "$scen" == small ]]; then
        python3 "$HERE/procstat.py" settle "$SETTLE_TIME_WAIT" "$SETTLE_LIMIT" >"$base.tw" &
        CHILDREN=("$!")
        wait "${CHILDREN[0]}" || true
        CHILDREN=()
        tw=$(cat "$base.tw")
        extra+=(--time-wait "$tw")
    fi
    log "rep $rep/$REPS  $server  $scen${tw:+ (TIME_WAIT sockets: $tw)}"
    # Earlier runs' uploads are written back to disk now, not in the middle of this run (which would charge
    # whichever server ran when the kernel's writeback started).
    timeout 120 sync || log "sync did not finish within 120 s"
    local cpu_before
    cpu_before=$(python3 "$HERE/procstat.py" cpu "$SRV_TREE")
    case "$scen" in
        idle-*)
            local n=${scen#idle-} before watch lpid wpid
            before=$(python3 "$HERE/procstat.py" mem "$SRV_TREE")
            timeout --kill-after=10 "$OUTER_LIMIT" "$BIN/ftpload" "$SRV_PORT" idle --sessions "$n" \
                --duration "$IDLE_HOLD" --json >"$base.out" 2>"$base.err" &
            lpid=$!
            # The server holds n sessions plus ftpload's probe session.
            timeout 120 python3 "$HERE/procstat.py" watch "$SRV_TREE" "$SRV_PORT" "$((n + 1))" \
                "$IDLE_WATCH_LIMIT" "$lpid" >"$base.watch" &
            wpid=$!
            CHILDREN=("$lpid" "$wpid")
            wait "$wpid" || true
            wait "$lpid" || status=$?
            CHILDREN=()
            watch=$(cat "$base.watch")
            [[ -n "$watch" ]] || watch='{"why":"watch-failed"}'
            extra+=(--mem-before "$before" --mem-during "$watch")
            ;;
        get) load "$base" "$SRV_PORT" get --file big.bin "${GET_ARGS[@]}" --duration "$RUN_CAP" || status=$? ;;
        get-1000)
            load "$base" "$SRV_PORT" get --file mid.bin "${GET1000_ARGS[@]}" --duration "$GET1000_SECS" || status=$?
            ;;
        get-tls)
            # The certificate is self-signed and made for this run: not verified.
            load "$base" "$SRV_PORT" get --file big.bin "${GET_ARGS[@]}" --duration "$RUN_CAP" --tls --insecure ||
                status=$?
            ;;
        put)
            # Dirty pages left by earlier runs would be written back during this one, on whichever server's turn.
            sync
            # --keep: pure-ftpd does not let anonymous users delete, so no server is asked to.
            load "$base" "$SRV_PORT" put "${PUT_ARGS[@]}" --keep --duration "$RUN_CAP" || status=$?
            find "$WORK/roots" -maxdepth 2 -name 'ftpload-*' -delete
            ;;
        small) load "$base" "$SRV_PORT" small --file small.bin "${SMALL_ARGS[@]}" --duration "$RUN_CAP" || status=$? ;;
        ramp) load "$base" "$SRV_PORT" ramp --file big.bin "${RAMP_ARGS[@]}" || status=$? ;;
    esac
    extra+=(--cpu-before "$cpu_before" --cpu-after "$(python3 "$HERE/procstat.py" cpu "$SRV_TREE")")
    local note=""
    if ! running "$SRV_TREE"; then
        note="server exited during the run: $(server_words)"
        log "$server: $note"
    fi
    record --rep "$rep" --server "$server" --scenario "$scen" --exit "$status" --stdout "$base.out" \
        --stderr "$base.err" --note "$note" "${extra[@]}"
    summarize_last
}

# One progress line with the headline figure of the run just recorded.
summarize_last() {
    python3 "$HERE/report.py" last "$RAW" >&2 || true
}

run_loopback() {
    local rep=$1 sockets chunk base="$WORK/run" status
    for chunk in 1K 256K; do
        for sockets in 1 64; do
            status=0
            rm -f "$base".*
            log "rep $rep/$REPS  loopback  $sockets socket(s), $chunk writes"
            load "$base" loopback --sockets "$sockets" --chunk "$chunk" --duration "$LOOPBACK_SECS" || status=$?
            record --rep "$rep" --server loopback --scenario "loopback-$chunk-x$sockets" --exit "$status" \
                --stdout "$base.out" --stderr "$base.err"
            summarize_last
        done
    done
}

# ---- main ----------------------------------------------------------------------------------------------------------

if [[ "$(id -u)" != 0 ]]; then
    echo "compare.sh: run as root (it installs packages and runs pure-ftpd in its own mount namespace)" >&2
    exit 2
fi
ulimit -n "$(ulimit -Hn)"
FDS=$(ulimit -n)
if [[ "$FDS" != unlimited && "$FDS" -lt $((IDLE_SIZES[-1] + 200)) ]]; then
    echo "compare.sh: the open-file limit is $FDS; ${IDLE_SIZES[-1]} idle sessions need more (raise ulimit -Hn)" >&2
    exit 2
fi
# get-1000: ftpload holds a control and a data connection per client, the server as many again.
if [[ "$FDS" != unlimited && "$FDS" -lt $((GET1000_ARGS[1] * 2 + 200)) ]]; then
    echo "compare.sh: the open-file limit is $FDS; get-1000 needs $((GET1000_ARGS[1] * 2 + 200))" >&2
    exit 2
fi

mkdir -p "$RESULTS"
RAW="$RESULTS/raw.jsonl"
: >"$RAW"
WORK=$(mktemp -d /tmp/ftpbench.XXXXXX)
chmod 755 "$WORK"
log "results in $RESULTS (open-file limit $FDS, $(nproc) cores)"

build
install_peers
prepare_data
make_cert

# idle first, while the server is fresh. small waits for TIME_WAIT to settle: its thousands of short data connections
# leave the most ports lingering, and the scenarios after it use few new ones. put and get-tls last: they need other
# instances (vsftpd's uploads; the FTPS servers).
SCENARIOS=()
for n in "${IDLE_SIZES[@]}"; do
    SCENARIOS+=("idle-$n")
done
SCENARIOS+=(small get get-1000 ramp put get-tls)
if [[ -n "$ONLY" ]]; then
    chosen=()
    for scen in "${SCENARIOS[@]}"; do
        name=$scen
        [[ "$scen" == idle-* ]] && name=idle
        [[ ",$ONLY," == *",$name,"* ]] && chosen+=("$scen")
    done
    SCENARIOS=("${chosen[@]}")
fi

STARTED=$SECONDS
for ((rep = 1; rep <= REPS; rep++)); do
    run_loopback "$rep"
    for server in "${SERVERS[@]}"; do
        for scen in "${SCENARIOS[@]}"; do
            if [[ "$scen" == get-tls && " ${TLS_SERVERS[*]} " != *" $server "* ]]; then
                continue
            fi
            run_scenario "$rep" "$server" "$scen"
        done
        stop_server
    done
    log "repetition $rep done after $(((SECONDS - STARTED) / 60)) min $(((SECONDS - STARTED) % 60)) s"
done

{
    echo "- Open-file limit of ftpload and of every server: $FDS; $(nproc) cores."
    echo "- Connection limits: $LIMITS."
    backlogs=""
    for name in $(printf '%s\n' "${!BACKLOG[@]}" | sort); do
        backlogs+="${backlogs:+, }$name ${BACKLOG[$name]:-unknown}"
    done
    echo "- Listen backlogs (the kernel's, capped by net.core.somaxconn $(cat /proc/sys/net/core/somaxconn)):"
    echo "  $backlogs."
    echo "  A backlog below get-1000's ${GET1000_ARGS[1]} clients (vsftpd's is compiled in, 32) lets the accept queue"
    echo "  overflow when they all connect at once; connections the kernel completes with SYN cookies meanwhile are"
    echo "  dropped, and ftpload sees them as greeting timeouts."
    echo "- get-tls (explicit FTPS: AUTH TLS, PROT P; an RSA 2048 self-signed certificate, not verified by ftpload)"
    echo "  runs against ${TLS_SERVERS[*]} only: pure-ftpd's package is unpacked rather than installed and has no"
    echo "  certificate set up."
    echo "- Server CPU: user + system seconds of the server's process tree (/proc/PID/stat utime, stime, cutime,"
    echo "  cstime summed over the tree), read before and after each run. Session processes of vsftpd and"
    echo "  pure-ftpd that end during a run are counted through the cutime/cstime of the parent that reaps them;"
    echo "  processes reaped outside the tree would be missed. Per GiB: the bytes of ftpload's report."
    echo "- Server + ftpload CPU: the above plus ftpload's own user + system seconds (its report's load_cpu_s). On"
    echo "  loopback the kernel's work for a transfer is charged to whichever side sets it off: a server blocked in"
    echo "  one large sendfile has its segments pushed out by the client's acknowledgements, in the client's time."
    echo "  The sum is what the machine spent on the transfer, and compares servers fairly."
} >"$WORK/setup.md"
python3 "$HERE/report.py" table "$RAW" --servers "${SERVERS[*]}" --reps "$REPS" --setup "$WORK/setup.md" \
    >"$RESULTS/table.md"
echo
cat "$RESULTS/table.md"
log "raw results: $RAW; table: $RESULTS/table.md"
