#!/usr/bin/env bash
# Footprint of `edgewise agent`: RSS and CPU at idle and under load.
#
#   scripts/bench-edge-footprint.sh [BINARY]   (default bin/edgewise; `make build` first)
#
# Starts a cloud (`edgewise serve`) and an agent bridged to it (gateway mode,
# spool fsync always), measures the agent process for IDLE seconds, then
# while `edgewise simulate` runs DEVICES devices publishing RATE messages per
# second in all (QoS 1) to the agent for LOAD seconds. Every message goes
# through the agent's spool to the cloud. Prints one line per phase.
set -euo pipefail
BIN=${1:-bin/edgewise}
DEVICES=${DEVICES:-100}
RATE=${RATE:-1000}
IDLE=${IDLE:-30}
LOAD=${LOAD:-60}
CLOUD_MQTT=${CLOUD_MQTT:-127.0.0.1:21883}
CLOUD_HTTP=${CLOUD_HTTP:-127.0.0.1:28080}
AGENT_MQTT=${AGENT_MQTT:-127.0.0.1:21884}
AGENT_HTTP=${AGENT_HTTP:-127.0.0.1:28081}
TOKEN=footprint-admin-token-0123456789
dir=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null; rm -rf "$dir"; }
trap cleanup EXIT

EDGEWISE_ADMIN_TOKEN=$TOKEN "$BIN" serve --data "$dir/cloud" --mqtt-addr "$CLOUD_MQTT" --http-addr "$CLOUD_HTTP" \
  --log-level warn 2>"$dir/cloud.log" &
pids+=($!)
cat >"$dir/agent.yaml" <<YAML
name: footprint-site
data_dir: $dir/agent
log: {level: warn}
mqtt: {addr: "$AGENT_MQTT", allow_anonymous: true}
http: {addr: "$AGENT_HTTP"}
uplink: {broker: "tcp://$CLOUD_MQTT", username: admin, password: $TOKEN, gateway: true}
spool: {fsync: always}
YAML
sleep 2
"$BIN" agent --config "$dir/agent.yaml" 2>"$dir/agent.log" &
agent=$!
pids+=($agent)
for _ in $(seq 50); do curl -sf "http://$AGENT_HTTP/healthz" | grep -q '"uplink_connected":true' && break; sleep 0.2; done

tck=$(getconf CLK_TCK)
cpu() { awk '{print $14+$15}' "/proc/$agent/stat"; }
rss() { awk '/VmRSS/ {print $2}' "/proc/$agent/status"; }

c0=$(cpu); sleep "$IDLE"; c1=$(cpu)
echo "idle:  rss $(( $(rss) / 1024 )) MiB, cpu $(awk -v d=$((c1-c0)) -v s="$IDLE" -v t="$tck" 'BEGIN{printf "%.2f", 100*d/(s*t)}')% of one core over ${IDLE}s"

maxrss=0
c0=$(cpu)
"$BIN" simulate --mqtt "$AGENT_MQTT" --anonymous --devices "$DEVICES" --rate "$RATE" --qos 1 \
  --duration "${LOAD}s" --interval-report 1h >"$dir/sim.log" 2>&1 &
sim=$!
while kill -0 "$sim" 2>/dev/null; do r=$(rss); (( r > maxrss )) && maxrss=$r; sleep 1; done
c1=$(cpu)
echo "load:  $DEVICES devices, $RATE msg/s QoS 1 for ${LOAD}s: rss max $(( maxrss / 1024 )) MiB, cpu $(awk -v d=$((c1-c0)) -v s="$LOAD" -v t="$tck" 'BEGIN{printf "%.1f", 100*d/(s*t)}')% of one core"
for _ in $(seq 100); do
  q=$(curl -sf "http://$AGENT_HTTP/api/v1/stats" | python3 -c 'import json,sys; s=json.load(sys.stdin); print(s["spool"]["queued"], s["spool"]["appended"], s["uplink"]["acked"])')
  [ "${q%% *}" = 0 ] && break; sleep 0.2
done
echo "spool: queued appended acked = $q"
tail -3 "$dir/sim.log"
