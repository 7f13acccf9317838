#!/usr/bin/env bash
# Runs every fuzz target of the repository, one after another, for FUZZTIME
# each (default 10m: the bar the security review set for every parser of
# outside input), and prints one line per target and a total. Exits non-zero
# when any target failed. Not part of run.sh: that one fuzzes each target for
# a few seconds. Usage:
#
#	tests/fuzz-long.sh                      # every target, 10 minutes each
#	FUZZTIME=30s tests/fuzz-long.sh         # a quicker sweep
#	FUZZTIME=100000x tests/fuzz-long.sh     # an execution budget instead
#	FUZZ_MATCH=CIBA tests/fuzz-long.sh      # only targets matching a regexp
#	FUZZ_PARALLEL=1 tests/fuzz-long.sh      # one fuzzing worker per target
#	                                        # (two sweeps side by side on 2 cores)
#
# The targets are found, not listed: every Fuzz function in a _test.go file
# of a package with one (go test -list). A crasher is written by Go to the
# package's testdata/fuzz/<target>/; each target's output is kept in
# FUZZ_LOGS (default: a new temporary directory).
#
# With a duration, Go before 1.27 may fail a target that found nothing with a
# bare "context deadline exceeded" when the time runs out mid-execution
# (go.dev/issue/75804). Such a run wrote no failing input; it is reported as
# "ok (deadline race)" and does not fail the sweep. Any other failure does.
set -uo pipefail
cd "$(dirname "$0")/.."

FUZZTIME=${FUZZTIME:-10m}
FUZZ_MATCH=${FUZZ_MATCH:-.}
FUZZ_PARALLEL=${FUZZ_PARALLEL:-}
FUZZ_LOGS=${FUZZ_LOGS:-$(mktemp -d -t portcullis-fuzz.XXXXXX)}
mkdir -p "$FUZZ_LOGS"

# Packages with a fuzz target, without compiling every test binary (tests/
# builds Caddy): the directories of _test.go files declaring one.
mapfile -t dirs < <(grep -rl --include='*_test.go' -E '^func Fuzz[A-Za-z0-9_]*\(' . | xargs -r -n1 dirname | sort -u)
if [ ${#dirs[@]} -eq 0 ]; then
	echo "no fuzz targets found" >&2
	exit 1
fi

targets=()
for d in "${dirs[@]}"; do
	pkg=$(go list "$d") || exit 1
	while read -r name; do
		case $name in Fuzz*) [[ $name =~ $FUZZ_MATCH ]] && targets+=("$pkg $name") ;; esac
	done < <(go test -list '^Fuzz' "$d")
done
if [ ${#targets[@]} -eq 0 ]; then
	echo "no fuzz target matches $FUZZ_MATCH" >&2
	exit 1
fi

echo "== ${#targets[@]} fuzz targets, $FUZZTIME each; logs in $FUZZ_LOGS"
printf '%-50s %-34s %9s %13s  %s\n' PACKAGE TARGET DURATION EXECS RESULT
passed=0 failed=0 start_all=$(date +%s)
for t in "${targets[@]}"; do
	pkg=${t% *} name=${t#* }
	log="$FUZZ_LOGS/$name.log"
	start=$(date +%s)
	go test -run '^$' -fuzz "^$name\$" -fuzztime "$FUZZTIME" ${FUZZ_PARALLEL:+-parallel "$FUZZ_PARALLEL"} "$pkg" >"$log" 2>&1
	rc=$?
	secs=$(($(date +%s) - start))
	# The last progress line says how many inputs ran.
	execs=$(grep -oE 'execs: [0-9]+' "$log" | tail -1 | grep -oE '[0-9]+' || true)
	if [ $rc -eq 0 ]; then
		result=ok
	elif grep -q 'context deadline exceeded' "$log" && ! grep -qE 'Failing input written to|panic:|--- FAIL: .*/|_test.go:[0-9]+:' "$log"; then
		result="ok (deadline race, go.dev/issue/75804)"
		rc=0
	else
		result="FAIL (see $log)"
	fi
	printf '%-50s %-34s %8ss %13s  %s\n' "$pkg" "$name" "$secs" "${execs:--}" "$result"
	if [ $rc -eq 0 ]; then
		passed=$((passed + 1))
	else
		failed=$((failed + 1))
		grep -E 'Failing input written to|--- FAIL|panic:|_test.go:[0-9]+:' "$log" | head -5 | sed 's/^/    /'
	fi
done
total=$(($(date +%s) - start_all))
echo "== fuzzing took ${total}s"
echo "fuzz: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
