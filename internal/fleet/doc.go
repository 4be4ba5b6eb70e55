// Package fleet owns the fleet index: an in-memory view of every thing
// (name, type, attributes, static groups), each thing's connectivity and, on
// demand, its shadow, over which fleet search queries (internal/registry/
// search) run with pagination, counts and aggregations.
//
// The index is filled from the registry at start ([Index.Load]) and kept
// current as a [registry.Listener]; connectivity comes from the broker as a
// broker.Observer (a thing is connected while at least one client
// authenticated as it is). Shadow fields are read from the shadow store only
// for things that pass the query's other terms.
//
// It also resolves groups: [Index.GroupsOf] (static groups with their
// ancestors plus matching dynamic groups; the policy engine's
// GroupResolver) and [Index.GroupThings] (members of a static group and its
// descendants, or of a dynamic group's query; used by jobs).
//
// thingGroupNames in queries matches static groups, a thing's direct groups
// and their ancestors; dynamic groups are not searchable by name (their
// query is).
package fleet
