package broker

// ChainObservers returns an Observer that tells each of obs in order. nil
// observers are skipped; with none left it returns nil.
func ChainObservers(obs ...Observer) Observer {
	var os observers
	for _, o := range obs {
		if o != nil {
			os = append(os, o)
		}
	}
	switch len(os) {
	case 0:
		return nil
	case 1:
		return os[0]
	}
	return os
}

type observers []Observer

func (os observers) OnConnect(c ClientInfo) {
	for _, o := range os {
		o.OnConnect(c)
	}
}

func (os observers) OnSubscribe(c ClientInfo, filter string) {
	for _, o := range os {
		o.OnSubscribe(c, filter)
	}
}

func (os observers) OnDisconnect(c ClientInfo) {
	for _, o := range os {
		o.OnDisconnect(c)
	}
}
