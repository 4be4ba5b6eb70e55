// Package apply owns declarative fleet files: parsing them, planning the
// changes that make the server match a file (create, update, delete), applying
// a plan, and exporting the current state in the same format, so that
// export followed by apply changes nothing.
//
// A file has up to five sections: thing_types, groups, things, policies and
// rules. A section that is present (even empty) is managed: with Prune,
// resources of that kind that the file does not declare are deleted. Absent
// sections are left alone. Within a declared thing, its attributes, groups
// and policies are authoritative (what the file lists is what the thing
// gets); a declared certificate means "at least one certificate attached to
// this thing, in this state": it is issued when missing (its private key is
// returned once in the result), never deleted by prune.
//
// Applying runs the plan's steps in dependency order (types, policies,
// groups parents first, things with their memberships and attachments,
// certificates, rules, then deletions in reverse) and stops at the first
// failure; the steps already done stay done, and applying the file again
// finishes the rest.
package apply
