#!/usr/bin/env bash
# TSBS iot load side by side: tsbs_load_influx (same data, workers and
# batch size) into InfluxDB 1.6 (Debian package `influxdb`) and into
# `edgewise serve --allow-anonymous`, RUNS times each, printing the medians
# as a Markdown table: rows/s, values/s and bytes on disk per stored value
# after compaction.
#
#   scripts/bench-tsdb.sh            (env: RUNS=3 SCALE=100 SEED=123 WORKERS=4 BATCH=5000
#                                     START=2016-01-01T00:00:00Z END=2016-01-02T00:00:00Z
#                                     TSBS_WORK=dir to keep TSBS binaries and data between runs)
#
# TSBS is built from the module proxy in TSBS_WORK (a temporary directory by
# default), never inside the repository. Each server is pinned to CPU 0 and
# the loader to CPU 1. InfluxDB runs with its default WAL fsync (every
# write), Edgewise with its default (fsync always, group commit). Disk use:
# InfluxDB's data+wal directories of the database after its full compaction
# (compact-full-write-cold-duration 30s, waited for); Edgewise's tsdb
# directory after `edgewise storage compact`.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
SCALE=${SCALE:-100}
SEED=${SEED:-123}
WORKERS=${WORKERS:-4}
BATCH=${BATCH:-5000}
START=${START:-2016-01-01T00:00:00Z}
END=${END:-2016-01-02T00:00:00Z}
INFLUX_PORT=${INFLUX_PORT:-18086}
EW_PORT=${EW_PORT:-18087}
TSBS_VERSION=v0.0.0-20230921131859-37fced794d56
command -v influxd >/dev/null || { echo "bench-tsdb: influxd not found (apt-get install influxdb)" >&2; exit 1; }
if [ -z "${EW_BIN:-}" ]; then
	make -s build
	EW_BIN=bin/edgewise
fi
WORK=${TSBS_WORK:-$(mktemp -d)}
mkdir -p "$WORK"
tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; rm -rf "$tmp"; [ -n "${TSBS_WORK:-}" ] || rm -rf "$WORK"; }
trap cleanup EXIT

if [ ! -x "$WORK/bin/tsbs_load_influx" ]; then
	src=$(cd "$WORK" && GOFLAGS=-mod=mod go mod download -json "github.com/timescale/tsbs@$TSBS_VERSION" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
	rm -rf "$WORK/tsbs" && cp -r "$src" "$WORK/tsbs" && chmod -R u+w "$WORK/tsbs"
	(cd "$WORK/tsbs" && go build -o "$WORK/bin/" ./cmd/tsbs_generate_data ./cmd/tsbs_load_influx ./cmd/tsbs_generate_queries ./cmd/tsbs_run_queries_influx)
fi
DATA="$WORK/iot-s$SCALE-$SEED-${START}_$END.lp"
if [ ! -s "$DATA" ]; then
	"$WORK/bin/tsbs_generate_data" --use-case=iot --seed="$SEED" --scale="$SCALE" --timestamp-start="$START" \
		--timestamp-end="$END" --log-interval=10s --format=influx >"$DATA"
fi

waitfor() { for _ in $(seq 100); do curl -sf -o /dev/null "$1" && return 0; sleep 0.2; done; echo "bench-tsdb: $1 did not answer" >&2; return 1; }
load() { # port -> "rows/s values/s values"
	local out
	out=$(taskset -c 1 "$WORK/bin/tsbs_load_influx" --urls="http://127.0.0.1:$1" --db-name=benchmark --do-create-db=false \
		--workers="$WORKERS" --batch-size="$BATCH" --file="$DATA" 2>&1) || { echo "$out" >&2; return 1; }
	echo "$(echo "$out" | sed -n 's/.*(mean rate \([0-9.]*\) rows\/sec).*/\1/p') $(echo "$out" | sed -n 's/.*(mean rate \([0-9.]*\) metrics\/sec).*/\1/p') $(echo "$out" | sed -n 's/^loaded \([0-9]*\) metrics.*/\1/p')"
}
run_influx() {
	local d="$tmp/influx" r
	rm -rf "$d" && mkdir -p "$d"
	cat >"$d/influxdb.conf" <<CONF
reporting-disabled = true
bind-address = "127.0.0.1:$((INFLUX_PORT + 2))"
[meta]
  dir = "$d/meta"
[data]
  dir = "$d/data"
  wal-dir = "$d/wal"
  query-log-enabled = false
  cache-snapshot-write-cold-duration = "10s"
  compact-full-write-cold-duration = "30s"
[http]
  bind-address = "127.0.0.1:$INFLUX_PORT"
  log-enabled = false
  max-body-size = 0
[monitor]
  store-enabled = false
[continuous_queries]
  enabled = false
CONF
	taskset -c 0 influxd -config "$d/influxdb.conf" >"$d/log" 2>&1 &
	pids+=($!)
	waitfor "http://127.0.0.1:$INFLUX_PORT/ping"
	curl -sf -o /dev/null -XPOST "http://127.0.0.1:$INFLUX_PORT/query" --data-urlencode 'q=CREATE DATABASE benchmark'
	r=$(load "$INFLUX_PORT")
	sleep 50 # snapshot after 10s cold, full compaction after 30s cold
	kill "${pids[-1]}" && wait "${pids[-1]}" 2>/dev/null || true
	unset 'pids[-1]'
	echo "$r $(du -sbc "$d/data/benchmark" "$d/wal/benchmark" | tail -1 | cut -f1)"
}
run_edgewise() {
	local d="$tmp/edgewise" r
	rm -rf "$d" && mkdir -p "$d"
	printf 'storage:\n  database: benchmark\n' >"$d/ew.yaml"
	taskset -c 0 "$EW_BIN" serve --config "$d/ew.yaml" --data "$d/data" --http-addr "127.0.0.1:$EW_PORT" \
		--mqtt-addr 127.0.0.1:0 --allow-anonymous --log-level warn >"$d/log" 2>&1 &
	pids+=($!)
	waitfor "http://127.0.0.1:$EW_PORT/ping"
	curl -sf -o /dev/null "http://127.0.0.1:$EW_PORT/query?q=SHOW%20DATABASES" ||
		{ echo "bench-tsdb: the loader needs SHOW DATABASES through /query (InfluxQL)" >&2; return 1; }
	r=$(load "$EW_PORT")
	kill "${pids[-1]}" && wait "${pids[-1]}" 2>/dev/null || true
	unset 'pids[-1]'
	"$EW_BIN" storage compact --data "$d/data" --config "$d/ew.yaml" >"$d/compact.log" 2>&1
	echo "$r $(du -sb "$d/data/tsdb" | cut -f1)"
}
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
: >"$tmp/influx.txt"
: >"$tmp/edgewise.txt"
for i in $(seq "$RUNS"); do
	run_influx | tee -a "$tmp/influx.txt" | sed "s/^/influxdb run $i: rows\/s values\/s values bytes: /" >&2
	run_edgewise | tee -a "$tmp/edgewise.txt" | sed "s/^/edgewise run $i: rows\/s values\/s values bytes: /" >&2
done
col() { awk -v c="$2" '{print $c}' "$tmp/$1.txt" | median; }
bpv() { awk '{printf "%.3f\n", $4/$3}' "$tmp/$1.txt" | median; }
ir=$(col influx 1) iv=$(col influx 2) er=$(col edgewise 1) ev=$(col edgewise 2)
echo "TSBS iot, scale $SCALE, $START..$END, seed $SEED, $WORKERS workers, batch $BATCH, median of $RUNS runs"
echo
echo "| | rows/s | values/s | bytes/value on disk |"
echo "|---|---:|---:|---:|"
printf "| InfluxDB %s | %.0f | %.0f | %s |\n" "$(influxd version | awk '{print $2}')" "$ir" "$iv" "$(bpv influx)"
printf "| Edgewise | %.0f | %.0f | %s |\n" "$er" "$ev" "$(bpv edgewise)"
printf "| Edgewise / InfluxDB | %.2fx | %.2fx | |\n" "$(echo "$er / $ir" | bc -l)" "$(echo "$ev / $iv" | bc -l)"
