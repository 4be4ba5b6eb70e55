#!/usr/bin/env bash
# Runs every fuzz target in the module for FUZZTIME each (default 20s).
# Targets are found by name, so a new Fuzz function is fuzzed without
# editing this file. Failing inputs land in the package's testdata/fuzz/.
#
# A target that fails without recording a failing input (the fuzzing engine
# gave up on a worker, "context deadline exceeded", which happens on a
# loaded machine) is run once more; a recorded input always fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."
FUZZTIME=${FUZZTIME:-20s}

corpus_files() { find . -path '*/testdata/fuzz/*' -type f 2>/dev/null | sort; }

run() { # pkg fn
	go test -run '^$' -fuzz "^${2}\$" -fuzztime "$FUZZTIME" "$1" </dev/null
}

grep -rl --include='*_test.go' '^func Fuzz' . | sort | while read -r file; do
	pkg="./$(dirname "${file#./}")"
	grep -o '^func Fuzz[A-Za-z0-9_]*' "$file" | sed 's/^func //' | while read -r fn; do
		echo "fuzz $pkg $fn ($FUZZTIME)"
		before=$(corpus_files)
		if run "$pkg" "$fn"; then
			continue
		fi
		if [ "$(corpus_files)" != "$before" ]; then
			echo "fuzz: $pkg $fn found a failing input (see testdata/fuzz above)" >&2
			exit 1
		fi
		echo "fuzz: $pkg $fn stopped without a failing input; running it again" >&2
		run "$pkg" "$fn"
	done
done
