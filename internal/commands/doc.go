// Package commands owns tracked commands: a request sent to one device over
// MQTT whose outcome the platform follows and keeps.
//
// # Life cycle
//
//	queued --(device subscribed to devices/{id}/command)--> delivered
//	queued --(TTL passed before delivery)-----------------> expired
//	delivered --(reply "succeeded" / "failed")------------> succeeded / failed
//	delivered --(no reply within the timeout)-------------> timed_out
//
// A command is delivered as soon as its thing has a client subscribed to
// devices/{id}/command (the broker's Observer reports subscriptions), or when
// one subscribes later, within the TTL. Delivery is a QoS 1 publish on
// devices/{id}/command of the JSON object
//
//	{"command_id": "...", "command": "<name, if given>", ...payload members}
//
// (the payload's members at the top level, so the seed's IoTDevice handler
// reads them directly). MQTT 5 subscribers also get the Response Topic
// devices/{id}/command/response and the command id as Correlation Data. The
// device answers on devices/{id}/command/response with
//
//	{"command_id": "...", "status": "succeeded"|"failed", "result": <any JSON>}
//
// (command_id may be left out by a v5 client that sends the Correlation
// Data back). Replies for unknown, other things' or already finished
// commands are counted and ignored.
//
// # Durability
//
// A command is written to the database before Send returns. Status changes
// are kept in memory and written in one transaction every FlushInterval
// (100 ms by default) and on Close; a crash can lose the last interval's
// changes, so a command may be delivered again after a crash
// (at-least-once). On start, queued commands are loaded again and delivered
// when their device subscribes within the TTL; delivered ones keep waiting
// for their reply until the timeout. Finished commands are deleted after
// Options.Retention.
package commands
