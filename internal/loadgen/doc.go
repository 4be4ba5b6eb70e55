// Package loadgen owns Edgewise's load generators: the device simulator
// behind `edgewise simulate` and the raw MQTT broker benchmark behind
// `edgewise bench broker`.
//
// The simulator provisions things through a small Registry interface (the
// command adapts the HTTP API client to it), then runs one real MQTT client
// per device (eclipse/paho.golang) that publishes the seed's telemetry JSON on
// devices/{id}/telemetry at a paced, evenly spread rate, reports state on
// devices/{id}/state and listens on devices/{id}/command.
//
// The benchmark speaks MQTT directly over TCP with the project codec
// (internal/broker/packets), so the same generator can measure Edgewise's
// broker and any other MQTT broker on the same machine. Publishers pipeline
// writes through a bufio.Writer (QoS 0) or keep a window of packets in
// flight (QoS 1); subscribers read the send time stamped in each payload and
// record end-to-end latency in a log-bucketed Histogram. Scenarios follow
// the EMQ open benchmark suite: point-to-point, fan-out, fan-in, fan-in to a
// shared subscription (falling back to plain subscriptions, with a note,
// when the target refuses $share), a connection storm with CONNACK latency
// and "many slow devices" (one goroutine per device publishing QoS 1 every
// few seconds, PUBACK latency). Given the target's pid, the connection
// scenarios read its resident memory from /proc to report bytes per
// connection.
//
// The package also owns the pieces both tools share: the Histogram, the
// telemetry payload generator (Sensor, AppendTelemetry) and the benchmark
// payload stamp (PutStamp, Stamp).
package loadgen
