// Package device is the Edgewise device SDK: what a sensor, actuator or
// gateway runs to talk to an Edgewise server (or any broker speaking the
// same topics) over MQTT 5.
//
//	d, err := device.New(device.Config{
//		Servers:  []string{"mqtt://edgewise.example:1883"},
//		Thing:    "sensor-1",
//		Password: os.Getenv("DEVICE_PASSWORD"),
//		QueueDir: "/var/lib/sensor/queue", // nothing published offline is lost
//	})
//	d.OnCommand(func(ctx context.Context, c device.Command) (any, error) {
//		return map[string]any{"rebooting": true}, nil
//	})
//	d.OnShadowDelta("", func(delta device.ShadowDelta) { /* apply, then report */ })
//	d.Start(ctx)
//	d.PublishTelemetry(ctx, map[string]any{"temperature": 21.5})
//
// # Topics
//
// Telemetry and state use the seed's envelope {"device_id", "timestamp",
// "data"} on devices/{thing}/telemetry and devices/{thing}/state; commands
// arrive on devices/{thing}/command and are answered on the response topic
// the server sets (devices/{thing}/command/response); shadows and jobs use
// the AWS IoT topics $aws/things/{thing}/shadow/... and
// $aws/things/{thing}/jobs/.... See docs/devices.md in the repository.
//
// # Connection
//
// The Device connects in the background (eclipse/paho.golang autopaho) with
// a password or a TLS client certificate (Config.TLS), and reconnects with
// exponential backoff. After every connection it subscribes again, sends
// what the offline queue holds, asks for its next job and fetches the
// shadows that have delta handlers, so desired state set while it was
// offline is applied.
//
// # Offline queue
//
// Publish, PublishTelemetry, ReportState and command and job replies go
// through a bounded FIFO queue while the device is offline (or while older
// messages are still waiting): Config.QueueMax messages (ErrQueueFull
// beyond), kept in memory and, with Config.QueueDir, in an append-only file
// that survives restarts of the device program (Config.QueueSync: also
// power loss). Messages are sent with QoS 1 in order and removed when the
// server acknowledged them, so delivery is at least once.
package device
