// Package topics owns subscription matching: a trie of MQTT topic filters
// that finds, for a published topic name, every (filter, subscriber) pair
// whose filter matches it.
//
// Matching follows MQTT 3.1.1 and 5.0 section 4.7: "+" matches exactly one
// level, "#" matches its parent level and every level below it ("a/#"
// matches "a"), empty levels are levels ("a//b" has three), and topics
// starting with "$" are not matched by filters whose first level is a
// wildcard. Shared subscriptions ("$share/...") and filter validation are
// the server's concern (see package packets); the trie treats a filter as
// plain levels.
package topics
