#!/usr/bin/env bash
# Broker benchmarks side by side: the same load generator
# (`edgewise bench broker`, raw MQTT over TCP) against Mosquitto, Edgewise
# and mochi-mqtt v2 in one run, each case RUNS times (targets interleaved
# within a run so machine noise hits all three alike), printing medians as
# Markdown tables. Raw JSON results are kept in $OUT/results.jsonl.
#
#   scripts/bench-broker.sh [MOSQUITTO_ADDR] [RUNS]
#
# Environment: DUR (measured seconds per throughput case, default 4s),
# CONNS (idle-connection counts, default "10000"; each needs that many open
# files in the broker and in the generator), SLOW_CONNS / SLOW_INTERVAL /
# SLOW_DUR (many-slow-devices case), CASES (space-separated subset of
# throughput, conn, slow), MOCHI_VERSION (default v2.7.9), OUT.
#
# Edgewise (`edgewise serve --allow-anonymous`, data in a temporary
# directory) and mochi-mqtt (built from the Go module proxy into a temporary
# directory, never into this repository) are started by the script on
# 127.0.0.1:$EW_PORT and :$MOCHI_PORT. All three brokers are pinned to CPU 0
# and the generator to CPU 1 (Go brokers get GOMAXPROCS=1 from the
# affinity mask; Mosquitto is single-threaded). The Go brokers are
# restarted before each idle-connection run so earlier runs' heaps do not
# hide the memory per connection.
set -euo pipefail
cd "$(dirname "$0")/.."
MOSQ=${1:-${MOSQ:-127.0.0.1:1883}}
RUNS=${2:-${RUNS:-3}}
DUR=${DUR:-4s}
EW_PORT=${EW_PORT:-18931}
EW_HTTP=${EW_HTTP:-18981}
MOCHI_PORT=${MOCHI_PORT:-18932}
MOCHI_VERSION=${MOCHI_VERSION:-v2.7.9}
CONNS=${CONNS:-10000}
SLOW_CONNS=${SLOW_CONNS:-10000}
SLOW_INTERVAL=${SLOW_INTERVAL:-5s}
SLOW_DUR=${SLOW_DUR:-15s}
CASES=${CASES:-throughput conn slow}
OUT=${OUT:-$(mktemp -d)}
mkdir -p "$OUT"
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
NOFILE=$(ulimit -n)

make -s build
work=$(mktemp -d)
mkdir -p "$work/mochi"
cat >"$work/mochi/main.go" <<'GO'
// A minimal mochi-mqtt v2 broker for side-by-side benchmarks: one TCP
// listener, every client allowed, warnings only.
package main

import (
	"flag"
	"log"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:18932", "listen address")
	flag.Parse()
	s := mqtt.New(&mqtt.Options{
		InlineClient: false,
		Logger:       slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err := s.AddHook(new(auth.AllowHook), nil); err != nil {
		log.Fatal(err)
	}
	if err := s.AddListener(listeners.NewTCP(listeners.Config{ID: "tcp", Address: *addr})); err != nil {
		log.Fatal(err)
	}
	go func() {
		if err := s.Serve(); err != nil {
			log.Fatal(err)
		}
	}()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	<-sig
	_ = s.Close()
}
GO
(
	cd "$work/mochi"
	go mod init mochibench >/dev/null 2>&1
	go get "github.com/mochi-mqtt/server/v2@${MOCHI_VERSION}" 2>/dev/null
	go mod tidy 2>/dev/null
	go build -o "$work/mochi-broker" .
)

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for p in "$EW_PORT" "$MOCHI_PORT"; do
	if port_open "$p"; then
		echo "bench-broker: port $p is in use" >&2
		exit 1
	fi
done
wait_port() { for _ in $(seq 100); do port_open "$1" && return 0; sleep 0.1; done; echo "bench-broker: nothing listens on $1" >&2; return 1; }

ew_pid="" mochi_pid="" data=""
start_ew() {
	data=$(mktemp -d)
	taskset -c 0 bin/edgewise serve --data "$data" --mqtt-addr "127.0.0.1:${EW_PORT}" --http-addr "127.0.0.1:${EW_HTTP}" \
		--allow-anonymous --log-level warn &
	ew_pid=$!
	wait_port "$EW_PORT"
}
stop_ew() { [ -n "$ew_pid" ] && stop_pid "$ew_pid"; ew_pid=""; rm -rf "$data"; }
start_mochi() {
	# mochi logs every client EOF as a warning.
	taskset -c 0 "$work/mochi-broker" --addr "127.0.0.1:${MOCHI_PORT}" 2>>"$OUT/mochi.log" &
	mochi_pid=$!
	wait_port "$MOCHI_PORT"
}
stop_pid() { # pid: SIGTERM, then SIGKILL after 10 s (mochi's Close can hang)
	kill "$1" 2>/dev/null || return 0
	for _ in $(seq 100); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
	kill -9 "$1" 2>/dev/null || true
	wait "$1" 2>/dev/null || true
}
stop_mochi() { [ -n "$mochi_pid" ] && stop_pid "$mochi_pid"; mochi_pid=""; }

mosq_pid=$(pgrep -x mosquitto | head -1 || true)
mosq_mask=""
if [ -n "$mosq_pid" ]; then
	mosq_mask=$(taskset -p "$mosq_pid" | awk '{print $NF}')
	taskset -p -c 0 "$mosq_pid" >/dev/null
fi
cleanup() {
	stop_ew || true
	stop_mochi || true
	rm -rf "$work"
	if [ -n "$mosq_pid" ]; then taskset -p "$mosq_mask" "$mosq_pid" >/dev/null || true; fi
}
trap cleanup EXIT
start_ew
start_mochi

results="$OUT/results.jsonl"
: >"$results"
echo "bench-broker: raw results in $results (open files limit $NOFILE)" >&2

# one CASE TARGET ADDR PID ARGS... : run the generator once, append its JSON.
one() {
	local case=$1 target=$2 addr=$3 pid=$4
	shift 4
	local extra=()
	[ -n "$pid" ] && extra=(--pid "$pid")
	local out
	if ! out=$(taskset -c 1 bin/edgewise bench broker --addr "$addr" "$@" "${extra[@]}" --json 2>/dev/null); then
		echo "bench-broker: $case on $target failed" >&2
	fi
	[ -n "$out" ] || out='{}'
	python3 -c 'import json,sys; d=json.loads(sys.argv[3]); d["case"]=sys.argv[1]; d["target"]=sys.argv[2]; print(json.dumps(d))' \
		"$case" "$target" "$out" >>"$results"
}
# each CASE ARGS... : RUNS rounds over the three targets.
each() {
	local case=$1
	shift
	for _ in $(seq "$RUNS"); do
		one "$case" Mosquitto "$MOSQ" "" "$@"
		one "$case" Edgewise "127.0.0.1:${EW_PORT}" "" "$@"
		one "$case" mochi "127.0.0.1:${MOCHI_PORT}" "" "$@"
	done
}

if [[ " $CASES " == *" throughput "* ]]; then
	for size in 16 256; do
		each "p2p QoS0 ${size} B, 2 pairs" --scenario p2p --pubs 2 --qos 0 --size "$size" --duration "$DUR"
		each "fan-out QoS0 ${size} B, 1→8" --scenario fanout --pubs 1 --subs 8 --qos 0 --size "$size" --duration "$DUR"
	done
	each "fan-in QoS0 64 B, 8→1" --scenario fanin --pubs 8 --subs 1 --qos 0 --duration "$DUR"
	each "shared fan-in QoS1 64 B, 4→\$share×4 (v5)" --scenario shared --pubs 4 --subs 4 --qos 1 --version 5 --duration "$DUR"
	each "p2p QoS1 64 B, 4 pairs" --scenario p2p --pubs 4 --qos 1 --duration "$DUR"
	each "p2p QoS1 64 B, paced 50k/s" --scenario p2p --pubs 4 --qos 1 --rate 50000 --duration "$DUR"
	each "p2p QoS0 64 B, paced 50k/s" --scenario p2p --pubs 2 --qos 0 --rate 50000 --duration "$DUR"
fi

if [[ " $CASES " == *" conn "* ]]; then
	mosq_files=$( [ -n "$mosq_pid" ] && awk '/Max open files/ {print $4}' "/proc/$mosq_pid/limits" || echo 0)
	for n in $CONNS; do
		if [ $((n + 500)) -gt "$NOFILE" ] || [ $((n + 500)) -gt "$mosq_files" ]; then
			echo "bench-broker: skipping $n idle connections: open files limit $NOFILE (Mosquitto $mosq_files)" >&2
			continue
		fi
		for _ in $(seq "$RUNS"); do
			one "idle ${n}" Mosquitto "$MOSQ" "$mosq_pid" --scenario conn --conns "$n" --hold 3s --connect-concurrency 200
			stop_ew; start_ew
			one "idle ${n}" Edgewise "127.0.0.1:${EW_PORT}" "$ew_pid" --scenario conn --conns "$n" --hold 3s --connect-concurrency 200
			stop_mochi; start_mochi
			one "idle ${n}" mochi "127.0.0.1:${MOCHI_PORT}" "$mochi_pid" --scenario conn --conns "$n" --hold 3s --connect-concurrency 200
		done
	done
fi

if [[ " $CASES " == *" slow "* ]] && [ $((SLOW_CONNS + 500)) -le "$NOFILE" ]; then
	each "slow devices ${SLOW_CONNS} × QoS1 every ${SLOW_INTERVAL}" --scenario slow --conns "$SLOW_CONNS" \
		--interval "$SLOW_INTERVAL" --duration "$SLOW_DUR" --connect-concurrency 200
fi

python3 - "$results" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
targets = ["Mosquitto", "Edgewise", "mochi"]
cases = []
for r in rows:
    if r["case"] not in cases:
        cases.append(r["case"])
def med(case, target, f):
    vals = [f(r) for r in rows if r["case"] == case and r["target"] == target and r.get("scenario")]
    vals = [v for v in vals if v is not None]
    return statistics.median(vals) if vals else None
def lat(key, q):
    return lambda r: (r.get(key) or {}).get(q, 0) / 1e6 if r.get(key) else None
def fmt(v, d=0):
    return "–" if v is None else f"{v:,.{d}f}"
def ratio(a, b):
    return "–" if not a or not b else f"{a / b:.2f}x"
tp = [c for c in cases if not c.startswith(("idle", "slow"))]
if tp:
    print("| case | Mosquitto delivered msg/s | Edgewise delivered msg/s | mochi delivered msg/s | E/M | E/mochi | p50 / p99 ms M · E · mochi | lost % M · E · mochi |")
    print("|---|---:|---:|---:|---:|---:|---|---|")
    for c in tp:
        # Delivered by arrival time in the period: a broker that pushes back
        # on publishers may have stamped little inside it (see the loss).
        rate = {t: med(c, t, lambda r: r.get("arrived_per_sec", r.get("received_per_sec"))) for t in targets}
        p = " · ".join(f"{fmt(med(c, t, lat('latency', 'p50_ns')), 2)} / {fmt(med(c, t, lat('latency', 'p99_ns')), 2)}" for t in targets)
        lost = " · ".join(fmt(med(c, t, lambda r: 100 * r.get("lost", 0) / max(r.get("expected", 1), 1)), 1) for t in targets)
        print(f"| {c} | {fmt(rate['Mosquitto'])} | {fmt(rate['Edgewise'])} | {fmt(rate['mochi'])} | "
              f"{ratio(rate['Edgewise'], rate['Mosquitto'])} | {ratio(rate['Edgewise'], rate['mochi'])} | {p} | {lost} |")
    notes = {r.get("note") for r in rows if r.get("note")}
    for n in sorted(notes):
        print(f"\nNote from the generator: {n}")
idle = [c for c in cases if c.startswith("idle")]
if idle:
    print("\n| idle subscribed connections | target | connects/s | CONNACK p50 / p99 ms | RSS per connection (KB) | held |")
    print("|---|---|---:|---:|---:|---:|")
    for c in idle:
        for t in targets:
            print(f"| {c[5:]} | {t} | {fmt(med(c, t, lambda r: r.get('connects_per_sec')))} | "
                  f"{fmt(med(c, t, lat('connect_latency', 'p50_ns')), 2)} / {fmt(med(c, t, lat('connect_latency', 'p99_ns')), 2)} | "
                  f"{fmt(med(c, t, lambda r: (r['target_rss_after_bytes'] - r['target_rss_before_bytes']) / max(r.get('held') or 1, 1) / 1024 if r.get('target_rss_after_bytes') else None), 2)} | "
                  f"{fmt(med(c, t, lambda r: r.get('held')))} |")
slow = [c for c in cases if c.startswith("slow")]
if slow:
    print("\n| many slow devices | target | sent msg/s | PUBACK p50 / p99 ms | acked / sent | errors |")
    print("|---|---|---:|---:|---:|---:|")
    for c in slow:
        for t in targets:
            print(f"| {c[13:]} | {t} | {fmt(med(c, t, lambda r: r.get('sent_per_sec')))} | "
                  f"{fmt(med(c, t, lat('ack_latency', 'p50_ns')), 2)} / {fmt(med(c, t, lat('ack_latency', 'p99_ns')), 2)} | "
                  f"{fmt(med(c, t, lambda r: r.get('acked')))} / {fmt(med(c, t, lambda r: r.get('sent')))} | "
                  f"{fmt(med(c, t, lambda r: r.get('errors')))} |")
PY
