#!/usr/bin/env bash
# Broker throughput side by side: the same load generator
# (`edgewise bench broker`) against Mosquitto and against `edgewise serve`,
# each scenario RUNS times, printing the median of each as a Markdown table.
#
#   scripts/bench-broker.sh [MOSQUITTO_ADDR] [RUNS]
#
# Starts its own `edgewise serve --allow-anonymous` on 127.0.0.1:$EW_PORT (18931)
# (data in a temporary directory) and stops it afterwards. Both brokers are
# pinned to CPU 0 and the load generator to CPU 1, so neither broker
# competes with the generator (Mosquitto is single-threaded; Edgewise gets
# one core too: GOMAXPROCS follows the affinity mask).
set -euo pipefail
cd "$(dirname "$0")/.."
MOSQ=${1:-127.0.0.1:1883}
RUNS=${2:-3}
DUR=${DUR:-5s}
EW_PORT=${EW_PORT:-18931}
EW_HTTP=${EW_HTTP:-18981}
make -s build
data=$(mktemp -d)
if (exec 3<>/dev/tcp/127.0.0.1/${EW_PORT}) 2>/dev/null; then
	echo "bench-broker: port ${EW_PORT} is in use" >&2
	exit 1
fi
taskset -c 0 bin/edgewise serve --data "$data" --mqtt-addr 127.0.0.1:${EW_PORT} --http-addr 127.0.0.1:${EW_HTTP} --allow-anonymous --log-level warn &
srv=$!
mosq_pid=$(pgrep -x mosquitto | head -1 || true)
mosq_mask=""
if [ -n "$mosq_pid" ]; then
	mosq_mask=$(taskset -p "$mosq_pid" | awk '{print $NF}')
	taskset -p -c 0 "$mosq_pid" >/dev/null
fi
trap 'kill $srv 2>/dev/null; wait $srv 2>/dev/null; rm -rf "$data"; [ -n "$mosq_pid" ] && taskset -p "$mosq_mask" "$mosq_pid" >/dev/null' EXIT
for _ in $(seq 50); do
	(exec 3<>/dev/tcp/127.0.0.1/${EW_PORT}) 2>/dev/null && break
	sleep 0.1
done

scenarios=(
	"p2p QoS0 2 pairs|--scenario p2p --pubs 2 --qos 0"
	"fan-out QoS0 1→8|--scenario fanout --pubs 1 --subs 8 --qos 0"
	"fan-in QoS0 8→1|--scenario fanin --pubs 8 --subs 1 --qos 0"
	"p2p QoS1 4 pairs|--scenario p2p --pubs 4 --qos 1"
	"p2p QoS0 paced 50k/s|--scenario p2p --pubs 2 --qos 0 --rate 50000"
	"p2p QoS1 paced 50k/s|--scenario p2p --pubs 4 --qos 1 --rate 50000"
)
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
run() { # addr args -> "recv/s p50ms p99ms lost"
	local addr=$1; shift
	local r p50 p99 lost
	r=(); p50=(); p99=(); lost=()
	for _ in $(seq "$RUNS"); do
		out=$(taskset -c 1 bin/edgewise bench broker --addr "$addr" "$@" --duration "$DUR" --json)
		r+=("$(echo "$out" | python3 -c 'import json,sys; print(int(json.load(sys.stdin)["received_per_sec"]))')")
		p50+=("$(echo "$out" | python3 -c 'import json,sys; print(round(json.load(sys.stdin)["latency"]["p50_ns"]/1e6,2))')")
		p99+=("$(echo "$out" | python3 -c 'import json,sys; print(round(json.load(sys.stdin)["latency"]["p99_ns"]/1e6,2))')")
		lost+=("$(echo "$out" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(round(100*d["lost"]/max(d["expected"],1),1))')")
	done
	echo "$(printf '%s\n' "${r[@]}" | median) $(printf '%s\n' "${p50[@]}" | median) $(printf '%s\n' "${p99[@]}" | median) $(printf '%s\n' "${lost[@]}" | median)"
}
echo "| scenario (64 B, MQTT 3.1.1) | Mosquitto recv msg/s | Edgewise recv msg/s | ratio | Mosquitto p50 / p99 ms | Edgewise p50 / p99 ms | lost % M / E |"
echo "|---|---:|---:|---:|---:|---:|---:|"
for s in "${scenarios[@]}"; do
	name=${s%%|*}; args=${s#*|}
	# shellcheck disable=SC2086
	read -r mr mp50 mp99 ml <<<"$(run "$MOSQ" $args)"
	# shellcheck disable=SC2086
	read -r er ep50 ep99 el <<<"$(run 127.0.0.1:${EW_PORT} $args)"
	ratio=$(python3 -c "print(f'{$er/max($mr,1):.1f}x')")
	echo "| $name | $mr | $er | $ratio | $mp50 / $mp99 | $ep50 / $ep99 | $ml / $el |"
done
