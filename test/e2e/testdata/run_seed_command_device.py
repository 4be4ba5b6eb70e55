#!/usr/bin/env python3
"""Runs the seed's IoTDevice class (seed_device.py) as an actuator that
answers tracked commands: on_command_received gets the command (the seed's
callback, unchanged) and the script replies on devices/{id}/command/response
with the command_id, as docs/devices.md describes.

usage: run_seed_command_device.py DEVICE_ID HOST USERNAME PASSWORD COUNT
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

done = threading.Event()
seen = []
dev = IoTDevice(device_id, host, username, password)
def on_command(payload):
    print("COMMAND " + json.dumps(payload, sort_keys=True))
    seen.append(payload)
    ok = payload.get("command") != "explode"
    reply = {"command_id": payload["command_id"],
             "status": "succeeded" if ok else "failed",
             "result": {"done": payload.get("command"), "delay": payload.get("delay")}}
    dev.client.publish(f"devices/{device_id}/command/response", json.dumps(reply), qos=1)
    if len(seen) >= count:
        done.set()
dev.on_command_received = on_command
dev.connect()

deadline = time.time() + 20
while not dev.client.is_connected() and time.time() < deadline:
    time.sleep(0.05)
if not dev.client.is_connected():
    print("ERROR not connected")
    sys.exit(2)
print("READY")
if not done.wait(60):
    print("ERROR not all commands received")
    sys.exit(3)
time.sleep(0.3)
dev.client.loop_stop()
dev.client.disconnect()
print("DONE")
