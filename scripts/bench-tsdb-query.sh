#!/usr/bin/env bash
# TSBS iot query latencies: Edgewise vs InfluxDB 1.6 (Debian package
# influxdb), same data, same queries, one run. Both servers are pinned to
# CPU 0 and the TSBS tools to CPU 1. Prints a markdown table of median and
# p95 latency per query type, and whether the first query of each type
# returned the same answer from both.
#
# Needs: TSBS_BIN, a directory with tsbs_generate_data, tsbs_load_influx,
# tsbs_generate_queries and tsbs_run_queries_influx built from
# github.com/timescale/tsbs@v0.0.0-20230921131859-37fced794d56 (outside the
# repo), influxd on PATH, python3, and bin/edgewise (make build).
#
# Knobs: SCALE (trucks, default 100), QUERIES (per type, default 20),
# START/END (data range, default two days: long-daily-sessions needs more than 24h), INFLUX_PORT (18096),
# EW_PORT (18196), KEEP=1 keeps the work directory, TYPES (space-separated query types to run; default all 13).
set -euo pipefail
cd "$(dirname "$0")/.."
: "${TSBS_BIN:?set TSBS_BIN to the directory holding the TSBS binaries}"
SCALE=${SCALE:-100}
QUERIES=${QUERIES:-20}
START=${START:-2016-01-01T00:00:00Z}
END=${END:-2016-01-03T00:00:00Z}
INFLUX_PORT=${INFLUX_PORT:-18096}
EW_PORT=${EW_PORT:-18196}
TYPES=${TYPES:-"single-last-loc last-loc low-fuel high-load stationary-trucks long-driving-sessions long-daily-sessions
avg-vs-projected-fuel-consumption avg-daily-driving-duration avg-daily-driving-session avg-load daily-activity breakdown-frequency"}

work=$(mktemp -d)
influx_pid= ew_pid=
cleanup() {
	[ -n "$influx_pid" ] && kill "$influx_pid" 2>/dev/null && wait "$influx_pid" 2>/dev/null
	[ -n "$ew_pid" ] && kill "$ew_pid" 2>/dev/null && wait "$ew_pid" 2>/dev/null
	if [ "${KEEP:-0}" = 1 ]; then echo "work directory kept: $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT

wait_ping() {
	for _ in $(seq 1 200); do
		curl -sf -o /dev/null "http://127.0.0.1:$1/ping" && return 0
		sleep 0.1
	done
	echo "server on port $1 did not come up" >&2
	exit 1
}

echo "generating iot data: scale $SCALE, $START .. $END" >&2
taskset -c 1 "$TSBS_BIN/tsbs_generate_data" --use-case=iot --seed=123 --scale="$SCALE" \
	--timestamp-start="$START" --timestamp-end="$END" --log-interval=10s --format=influx >"$work/data.influx"

mkdir -p "$work/influx"
cat >"$work/influxdb.conf" <<CONF
reporting-disabled = true
bind-address = "127.0.0.1:$((INFLUX_PORT + 2))"
[meta]
  dir = "$work/influx/meta"
[data]
  dir = "$work/influx/data"
  wal-dir = "$work/influx/wal"
  query-log-enabled = false
[coordinator]
  max-select-point = 0
[monitor]
  store-enabled = false
[http]
  bind-address = "127.0.0.1:$INFLUX_PORT"
  log-enabled = false
[continuous_queries]
  enabled = false
CONF
taskset -c 0 influxd -config "$work/influxdb.conf" >"$work/influxd.log" 2>&1 &
influx_pid=$!
taskset -c 0 bin/edgewise serve --data "$work/ew" --http-addr "127.0.0.1:$EW_PORT" --mqtt-addr "127.0.0.1:$((EW_PORT + 1))" \
	--allow-anonymous --log-level warn >"$work/edgewise.log" 2>&1 &
ew_pid=$!
wait_ping "$INFLUX_PORT"
wait_ping "$EW_PORT"

for port in "$INFLUX_PORT" "$EW_PORT"; do
	echo "loading into port $port" >&2
	taskset -c 1 "$TSBS_BIN/tsbs_load_influx" --urls="http://127.0.0.1:$port" --db-name=benchmark --file="$work/data.influx" \
		--workers=2 --batch-size=5000 --reporting-period=0 | tail -2 >&2
done

latency() { # TSBS results json -> "p50 p95" in ms over all queries of the run
	python3 - "$1" <<'PY'
import sys, json
q = json.load(open(sys.argv[1]))["Totals"]["overallQuantiles"]
allq = next(v for k, v in q.items() if k.lower().startswith("all"))
print("%.2f %.2f" % (allq["q50"], allq["q95"]))
PY
}

compare() { # query file -> same/differs for the first query of the file
	python3 - "$1" "$INFLUX_PORT" "$EW_PORT" <<'PY'
import sys, json, urllib.request, urllib.parse
# TSBS query files are gob-encoded; the query text is recovered from the generator output instead.
path, p1, p2 = sys.argv[1:]
q = open(path + ".txt").read()
def run(port):
    data = urllib.parse.urlencode({"q": q, "db": "benchmark"}).encode()
    body = json.load(urllib.request.urlopen("http://127.0.0.1:%s/query" % port, data, timeout=600))
    def norm(v):
        return round(v, 6) if isinstance(v, float) else v
    out = []
    for r in body.get("results", []):
        if "error" in r:
            out.append(("error", r["error"]))
        for s in r.get("series", []):
            out.append((s.get("name"), sorted((s.get("tags") or {}).items()), s["columns"],
                        [[norm(x) for x in row] for row in s.get("values", [])]))
    return sorted(out, key=repr)
a, b = run(p1), run(p2)
print("same" if a == b else "differs")
PY
}

echo "| query type | InfluxDB 1.6 median | InfluxDB p95 | Edgewise median | Edgewise p95 | median ratio (Influx/Edgewise) | same answer |"
echo "|---|---:|---:|---:|---:|---:|---|"
for t in $TYPES; do
	qf="$work/q-$t"
	taskset -c 1 "$TSBS_BIN/tsbs_generate_queries" --use-case=iot --seed=123 --scale="$SCALE" --timestamp-start="$START" \
		--timestamp-end="$END" --queries="$QUERIES" --query-type="$t" --format=influx --file="$qf" >&2
	# The first query's text, for the answer comparison.
	taskset -c 1 "$TSBS_BIN/tsbs_generate_queries" --use-case=iot --seed=123 --scale="$SCALE" --timestamp-start="$START" \
		--timestamp-end="$END" --queries=1 --query-type="$t" --format=influx --file="$qf.one" >&2
	taskset -c 1 "$TSBS_BIN/tsbs_run_queries_influx" --file="$qf.one" --urls="http://127.0.0.1:$INFLUX_PORT" --db-name=benchmark \
		--print-responses --print-interval=0 --workers=1 2>/dev/null | python3 -c '
import sys, json, re
text = "".join(re.sub(r"^ID \d+: ", "", l) for l in sys.stdin)
obj, _ = json.JSONDecoder().raw_decode(text[text.find("{"):])
sys.stdout.write(obj["influxql"])' >"$qf.txt" 2>/dev/null || true
	for port in "$INFLUX_PORT" "$EW_PORT"; do
		taskset -c 1 "$TSBS_BIN/tsbs_run_queries_influx" --file="$qf" --urls="http://127.0.0.1:$port" --db-name=benchmark \
			--workers=1 --print-interval=0 --burn-in=1 --max-queries="$QUERIES" --results-file="$qf.$port.json" >"$qf.$port.out" 2>&1 ||
			echo "tsbs_run_queries_influx failed on port $port for $t, see $qf.$port.out" >&2
	done
	read -r i50 i95 < <(latency "$qf.$INFLUX_PORT.json" 2>/dev/null || echo "nan nan")
	read -r e50 e95 < <(latency "$qf.$EW_PORT.json" 2>/dev/null || echo "nan nan")
	same=$( [ -s "$qf.txt" ] && compare "$qf" 2>/dev/null || echo "n/a")
	ratio=$(python3 -c "print('%.1fx' % (float('$i50') / max(float('$e50'), 0.001)))")
	echo "| $t | $i50 ms | $i95 ms | $e50 ms | $e95 ms | $ratio | $same |"
done
