// Package interop runs Edgewise's MQTT broker against clients nobody here
// wrote: the mqtt npm package (MQTT 5, over TCP and WebSocket, driven
// through node/driver.js) and Debian's mosquitto_pub, mosquitto_sub and
// mosquitto_rr (-V 5, over TCP and TLS with client certificates). Each
// test drives one MQTT feature end to end between two of these clients.
//
// The tests skip when node, the installed npm package (make test-deps) or
// the mosquitto clients are missing, and fail instead when
// EDGEWISE_TEST_REQUIRE_PEERS is set, as in CI.
package interop
