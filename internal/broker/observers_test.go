package broker

import (
	"strings"
	"testing"
)

type recObserver struct {
	name string
	log  *[]string
}

func (r recObserver) OnConnect(c ClientInfo) { *r.log = append(*r.log, r.name+" connect "+c.ClientID) }
func (r recObserver) OnSubscribe(c ClientInfo, f string) {
	*r.log = append(*r.log, r.name+" subscribe "+f)
}
func (r recObserver) OnDisconnect(c ClientInfo) {
	*r.log = append(*r.log, r.name+" disconnect "+c.ClientID)
}

func TestChainObservers(t *testing.T) {
	if ChainObservers() != nil || ChainObservers(nil, nil) != nil {
		t.Fatal("an empty chain must be nil")
	}
	var log []string
	a := recObserver{"a", &log}
	if o := ChainObservers(nil, a); o != Observer(a) {
		t.Fatal("a chain of one is that observer")
	}
	o := ChainObservers(a, nil, recObserver{"b", &log})
	c := ClientInfo{ClientID: "dev"}
	o.OnConnect(c)
	o.OnSubscribe(c, "x/#")
	o.OnDisconnect(c)
	want := "a connect dev,b connect dev,a subscribe x/#,b subscribe x/#,a disconnect dev,b disconnect dev"
	if got := strings.Join(log, ","); got != want {
		t.Fatalf("got %s\nwant %s", got, want)
	}
}
