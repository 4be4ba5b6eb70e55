package packets_test

import (
	"errors"
	"fmt"

	"github.com/edgewise-iot/edgewise/internal/broker/packets"
)

// Reading packets from a buffer: parse the fixed header, wait for the
// body, decode, and map decode errors to a reaction.
func Example() {
	buf := packets.AppendPublish(nil, packets.V5, &packets.Publish{QoS: 1, PacketID: 7, Topic: "devices/d1/telemetry", Payload: []byte(`{"t":21.5}`)})
	buf = packets.AppendPingreq(buf)
	buf = append(buf, 0x30, 0x04, 0x00, 0x01, '#', 0x00) // PUBLISH to "#": malformed

	for len(buf) > 0 {
		h, ok, err := packets.ParseFixedHeader(buf, 1<<20)
		if err != nil || !ok || len(buf) < h.Len+h.Remaining {
			fmt.Println("need more data or bad header:", err)
			return
		}
		body := buf[h.Len : h.Len+h.Remaining]
		buf = buf[h.Len+h.Remaining:]
		pkt, err := packets.Decode(packets.V5, h, body)
		switch {
		case errors.Is(err, packets.ErrMalformed):
			fmt.Println("disconnect 0x81:", err)
			continue
		case err != nil:
			fmt.Println("error:", err)
			continue
		}
		switch p := pkt.(type) {
		case *packets.Publish:
			fmt.Printf("publish %s qos=%d id=%d %s\n", p.Topic, p.QoS, p.PacketID, p.Payload)
		default:
			fmt.Printf("%T\n", p)
		}
	}
	// Output:
	// publish devices/d1/telemetry qos=1 id=7 {"t":21.5}
	// *packets.Pingreq
	// disconnect 0x81: packets: PUBLISH: topic name contains wildcard: malformed packet
}
