#!/usr/bin/env bash
# Runs every fuzz target in the module for FUZZTIME each (default 20s).
# Targets are found by name, so a new Fuzz function is fuzzed without
# editing this file. Failing inputs land in the package's testdata/fuzz/.
set -euo pipefail
cd "$(dirname "$0")/.."
FUZZTIME=${FUZZTIME:-20s}
grep -rl --include='*_test.go' '^func Fuzz' . | sort | while read -r file; do
	pkg="./$(dirname "${file#./}")"
	grep -o '^func Fuzz[A-Za-z0-9_]*' "$file" | sed 's/^func //' | while read -r fn; do
		echo "fuzz $pkg $fn ($FUZZTIME)"
		go test -run '^$' -fuzz "^${fn}\$" -fuzztime "$FUZZTIME" "$pkg" </dev/null
	done
done
