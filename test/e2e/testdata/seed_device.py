#!/usr/bin/env python3
"""MQTT IoT client."""
import paho.mqtt.client as mqtt
import json
from datetime import datetime
class IoTDevice:
    """IoT device client."""
    def __init__(self, device_id, broker_url, username=None, password=None):
        self.device_id = device_id
        self.broker_url = broker_url
        self.client = mqtt.Client(client_id=device_id)
        if username and password:
            self.client.username_pw_set(username, password)
        self.client.on_connect = self.on_connect
        self.client.on_disconnect = self.on_disconnect
        self.client.on_message = self.on_message
        # Callbacks to override
        self.on_data_received = None
        self.on_command_received = None
    def connect(self):
        """Connect to broker."""
        self.client.connect(self.broker_url, 1883, 60)
        self.client.loop_start()
    def on_connect(self, client, userdata, flags, rc):
        """Handle connection."""
        if rc == 0:
            print(f"Connected: {self.device_id}")
            # Subscribe to commands
            client.subscribe(f"devices/{self.device_id}/command")
        else:
            print(f"Connection failed: {rc}")
    def on_disconnect(self, client, userdata, rc):
        """Handle disconnection."""
        print(f"Disconnected: {rc}")
    def on_message(self, client, userdata, msg):
        """Handle incoming message."""
        topic = msg.topic
        payload = json.loads(msg.payload)
        if '/command' in topic:
            if self.on_command_received:
                self.on_command_received(payload)
    def publish(self, topic, data):
        """Publish data."""
        payload = json.dumps({
            'device_id': self.device_id,
            'timestamp': datetime.utcnow().isoformat(),
            'data': data
        })
        self.client.publish(topic, payload)
    def publish_telemetry(self, sensor_data):
        """Publish sensor telemetry."""
        self.publish(f"devices/{self.device_id}/telemetry", sensor_data)
    def report_state(self, state):
        """Report device state."""
        self.publish(f"devices/{self.device_id}/state", state)
