#!/usr/bin/env python3
"""Drives the seed's IoTDevice class (seed_device.py, unchanged but for the
broker_url assignment its constructor forgets) the way the seed's users do:
connect, publish telemetry, report state, react to a command.

usage: run_seed_device.py DEVICE_ID HOST USERNAME PASSWORD COUNT
Prints one line per event; the Go test reads them.
"""
import sys
import threading
import time
import json

sys.stdout.reconfigure(line_buffering=True)
from seed_device import IoTDevice

device_id, host, username, password, count = sys.argv[1:6]
count = int(count)

got_command = threading.Event()
dev = IoTDevice(device_id, host, username, password)
def on_command(payload):
    print("COMMAND " + json.dumps(payload, sort_keys=True))
    got_command.set()
dev.on_command_received = on_command
dev.connect()

deadline = time.time() + 20
while not dev.client.is_connected() and time.time() < deadline:
    time.sleep(0.05)
if not dev.client.is_connected():
    print("ERROR not connected")
    sys.exit(2)

for i in range(count):
    dev.publish_telemetry({"temperature": 20.0 + i, "humidity": 40 + i % 5, "door_open": i % 2 == 0, "firmware": "1.2.3", "location": {"lat": 48.1, "lon": 11.5}})
    time.sleep(0.01)
dev.report_state({"mode": "eco", "led": {"on": True}})
print("PUBLISHED %d" % count)

if not got_command.wait(30):
    print("ERROR no command")
    sys.exit(3)
time.sleep(0.2)
dev.client.loop_stop()
dev.client.disconnect()
print("DONE")
