package broker

import (
	"context"
	"testing"
	"time"

	"github.com/256dpi/gomqtt/spec"
)

// denyAnonymous admits only clients presenting a username.
type denyAnonymous struct{}

func (denyAnonymous) Authenticate(_ context.Context, c *ConnectInfo) (*Principal, error) {
	if c.Username == "" {
		return nil, ErrNotAuthorized
	}
	return &Principal{Name: c.Username}, nil
}

// TestConformance runs the gomqtt broker conformance suite (MQTT 3.1.1) for
// the features this version supports (everything but QoS 2).
func TestConformance(t *testing.T) {
	if testing.Short() {
		t.Skip("conformance suite takes several seconds")
	}
	if raceEnabled {
		// The gomqtt client races with itself (it resends stored publishes
		// on CONNACK while Publish encodes them); run without -race.
		t.Skip("gomqtt client has data races of its own")
	}
	_, addr := startServer(t, Options{Authenticator: denyAnonymous{}})
	c := spec.AllFeatures()
	c.URL = "tcp://user:pass@" + addr
	c.DenyURL = "tcp://" + addr
	c.ProcessWait = 20 * time.Millisecond
	c.MessageRetainWait = 50 * time.Millisecond
	c.NoMessageWait = 50 * time.Millisecond

	tests := []struct {
		name string
		fn   func(t *testing.T)
	}{
		{"PublishSubscribeQOS0", func(t *testing.T) { spec.PublishSubscribeTest(t, c, "pubsub/1", "pubsub/1", 0, 0, 0) }},
		{"PublishSubscribeQOS1", func(t *testing.T) { spec.PublishSubscribeTest(t, c, "pubsub/2", "pubsub/2", 1, 1, 1) }},
		{"PublishSubscribeQOSKeep0", func(t *testing.T) { spec.PublishSubscribeTest(t, c, "keep/1", "keep/1", 1, 0, 0) }},
		{"PublishSubscribeWildcardOne", func(t *testing.T) { spec.PublishSubscribeTest(t, c, "wildcard/1/foo", "wildcard/1/+", 0, 0, 0) }},
		{"PublishSubscribeWildcardSome", func(t *testing.T) { spec.PublishSubscribeTest(t, c, "wildcard/2/foo", "wildcard/2/#", 0, 0, 0) }},
		{"PublishSubscribeQOSDowngrade1To0", func(t *testing.T) { spec.PublishSubscribeTest(t, c, "downgrade/1", "downgrade/1", 0, 1, 0) }},
		{"UnsubscribeQOS0", func(t *testing.T) { spec.UnsubscribeTest(t, c, "unsub/1", 0) }},
		{"UnsubscribeQOS1", func(t *testing.T) { spec.UnsubscribeTest(t, c, "unsub/2", 1) }},
		{"UnsubscribeNotExistingSubscription", func(t *testing.T) { spec.UnsubscribeNotExistingSubscriptionTest(t, c, "unsub/4") }},
		{"UnsubscribeOverlappingSubscription", func(t *testing.T) { spec.UnsubscribeOverlappingSubscriptions(t, c, "unsub/5") }},
		{"SubscriptionUpgradeQOS0To1", func(t *testing.T) { spec.SubscriptionUpgradeTest(t, c, "subup/1", 0, 1) }},
		{"OverlappingSubscriptionsWildcardOne", func(t *testing.T) { spec.OverlappingSubscriptionsTest(t, c, "ovlsub/1/foo", "ovlsub/1/+") }},
		{"OverlappingSubscriptionsWildcardSome", func(t *testing.T) { spec.OverlappingSubscriptionsTest(t, c, "ovlsub/2/foo", "ovlsub/2/#") }},
		{"DuplicateSubscription", func(t *testing.T) { spec.DuplicateSubscriptionTest(t, c, "dblsub") }},
		{"IsolatedSubscription", func(t *testing.T) { spec.IsolatedSubscriptionTest(t, c, "islsub") }},
		{"WillQOS0", func(t *testing.T) { spec.WillTest(t, c, "will/1", 0, 0) }},
		{"WillQOS1", func(t *testing.T) { spec.WillTest(t, c, "will/2", 1, 1) }},
		{"CleanWill", func(t *testing.T) { spec.CleanWillTest(t, c, "will/4") }},
		{"KeepAlive", func(t *testing.T) { spec.KeepAliveTest(t, c) }},
		{"KeepAliveTimeout", func(t *testing.T) { spec.KeepAliveTimeoutTest(t, c) }},
		{"UnexpectedPubrel", func(t *testing.T) { spec.UnexpectedPubrelTest(t, c) }},
		{"RetainedMessageQOS0", func(t *testing.T) { spec.RetainedMessageTest(t, c, "retained/1", "retained/1", 0, 0) }},
		{"RetainedMessageQOS1", func(t *testing.T) { spec.RetainedMessageTest(t, c, "retained/2", "retained/2", 1, 1) }},
		{"RetainedMessageDowngrade1To0", func(t *testing.T) { spec.RetainedMessageTest(t, c, "retained/4", "retained/4", 0, 1) }},
		{"RetainedMessageWildcardOne", func(t *testing.T) { spec.RetainedMessageTest(t, c, "retained/7/foo/bar", "retained/7/foo/+", 0, 0) }},
		{"RetainedMessageWildcardSome", func(t *testing.T) { spec.RetainedMessageTest(t, c, "retained/8/foo/bar", "retained/8/#", 0, 0) }},
		{"RetainedMessageReplace", func(t *testing.T) { spec.RetainedMessageReplaceTest(t, c, "retained/9") }},
		{"ClearRetainedMessage", func(t *testing.T) { spec.ClearRetainedMessageTest(t, c, "retained/10") }},
		{"DirectRetainedMessage", func(t *testing.T) { spec.DirectRetainedMessageTest(t, c, "retained/11") }},
		{"DirectClearRetainedMessage", func(t *testing.T) { spec.DirectClearRetainedMessageTest(t, c, "retained/12") }},
		{"RetainedWill", func(t *testing.T) { spec.RetainedWillTest(t, c, "retained/13") }},
		{"RetainedMessageResubscription", func(t *testing.T) { spec.RetainedMessageResubscriptionTest(t, c, "retained/14") }},
		{"PublishResendQOS1", func(t *testing.T) { spec.PublishResendQOS1Test(t, c, "pubres/1") }},
		{"StoredSubscriptionsQOS0", func(t *testing.T) { spec.StoredSubscriptionsTest(t, c, "strdsub/1", 0) }},
		{"StoredSubscriptionsQOS1", func(t *testing.T) { spec.StoredSubscriptionsTest(t, c, "strdsub/2", 1) }},
		{"CleanStoredSubscriptions", func(t *testing.T) { spec.CleanStoredSubscriptionsTest(t, c, "strdsub/4") }},
		{"RemoveStoredSubscription", func(t *testing.T) { spec.RemoveStoredSubscriptionTest(t, c, "strdsub/5") }},
		{"OfflineSubscriptionQOS00", func(t *testing.T) { spec.OfflineSubscriptionTest(t, c, "offsub/1", 0, 0, false) }},
		{"OfflineSubscriptionQOS01", func(t *testing.T) { spec.OfflineSubscriptionTest(t, c, "offsub/2", 0, 1, false) }},
		{"OfflineSubscriptionQOS10", func(t *testing.T) { spec.OfflineSubscriptionTest(t, c, "offsub/3", 1, 0, false) }},
		{"OfflineSubscriptionQOS11", func(t *testing.T) { spec.OfflineSubscriptionTest(t, c, "offsub/4", 1, 1, true) }},
		{"OfflineSubscriptionRetainedQOS0", func(t *testing.T) { spec.OfflineSubscriptionRetainedTest(t, c, "offsubret/1", 0, 0, false) }},
		{"OfflineSubscriptionRetainedQOS1", func(t *testing.T) { spec.OfflineSubscriptionRetainedTest(t, c, "offsubret/2", 1, 1, true) }},
		{"Authentication", func(t *testing.T) { spec.AuthenticationTest(t, c) }},
		{"UniqueClientIDUnclean", func(t *testing.T) { spec.UniqueClientIDUncleanTest(t, c) }},
		{"UniqueClientIDClean", func(t *testing.T) { spec.UniqueClientIDCleanTest(t, c) }},
		{"RootSlashDistinction", func(t *testing.T) { spec.RootSlashDistinctionTest(t, c, "rootslash") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, tt.fn)
	}
}
