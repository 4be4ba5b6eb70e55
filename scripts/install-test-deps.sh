#!/usr/bin/env bash
# Installs the Debian packages the tests use as independent peers:
# python3-paho-mqtt (the seed's device code runs on it),
# mosquitto-clients, influxdb-client and curl, and the mqtt npm package the interop tests drive
# (test/interop/node, pinned by its package-lock.json). Safe to run
# repeatedly; does nothing when present.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -f test/interop/node/node_modules/mqtt/package.json ]; then
	if command -v npm >/dev/null 2>&1; then
		echo "install-test-deps: installing the mqtt npm package into test/interop/node"
		npm ci --prefix test/interop/node --no-audit --no-fund --loglevel=error
	else
		echo "install-test-deps: please install node and npm (the interop tests need them)" >&2
	fi
fi

need=()
/usr/bin/python3 -c 'import paho.mqtt.client' 2>/dev/null || need+=(python3-paho-mqtt)
command -v mosquitto_pub >/dev/null 2>&1 || need+=(mosquitto-clients)
command -v influx >/dev/null 2>&1 || need+=(influxdb-client) # the Influx line protocol tests write with it
command -v curl >/dev/null 2>&1 || need+=(curl)
if [ ${#need[@]} -eq 0 ]; then
	exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
	echo "install-test-deps: please install: ${need[*]} (tests that need them will skip)" >&2
	exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
	SUDO="sudo"
fi
echo "install-test-deps: installing ${need[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
