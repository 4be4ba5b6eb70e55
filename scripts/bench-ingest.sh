#!/usr/bin/env bash
# End-to-end telemetry ingest: `edgewise simulate` devices publish the seed's
# JSON over MQTT into `edgewise serve`; afterwards every device's stored
# point count is read back through the API and compared with what was sent.
#
#   scripts/bench-ingest.sh [DEVICES] [RATE msgs/s] [DURATION] [QOS]
set -euo pipefail
cd "$(dirname "$0")/.."
DEVICES=${1:-200}
RATE=${2:-25000}
DUR=${3:-20s}
QOS=${4:-1}
make -s build
data=$(mktemp -d)
bin/edgewise serve --data "$data" --mqtt-addr 127.0.0.1:18832 --http-addr 127.0.0.1:18082 --log-level warn &
srv=$!
trap 'kill $srv 2>/dev/null; wait $srv 2>/dev/null; rm -rf "$data"' EXIT
sleep 1
export EDGEWISE_SERVER=http://127.0.0.1:18082 EDGEWISE_DATA=$data
bin/edgewise simulate --devices "$DEVICES" --rate "$RATE" --duration "$DUR" --qos "$QOS" --mqtt 127.0.0.1:18832 --interval-report 5s
python3 - "$data/admin.token" "$DEVICES" <<'PY'
import json, sys, urllib.request
token = open(sys.argv[1]).read().strip()
n = int(sys.argv[2])
total = 0
for i in range(1, n + 1):
    name = "sim-%0*d" % (max(4, len(str(n))), i)
    req = urllib.request.Request(
        "http://127.0.0.1:18082/api/v1/things/%s/telemetry?field=temperature&start=-1h&every=1h&fn=count" % name,
        headers={"Authorization": "Bearer " + token})
    d = json.load(urllib.request.urlopen(req))
    total += sum(p["value"] for s in d["series"] for p in s["points"])
stats = json.load(urllib.request.urlopen(urllib.request.Request(
    "http://127.0.0.1:18082/api/v1/stats", headers={"Authorization": "Bearer " + token})))
print("stored telemetry messages (count over all devices): %d" % total)
print("ingest counters: %s" % json.dumps(stats["ingest"]))
PY
