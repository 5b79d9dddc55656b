#!/bin/sh
# shellcheck disable=SC2086 # flag lists are split into words on purpose
# models/check.sh - check the Promela models of models/ with spin.
#
# For each model: an exhaustive safety search of the correct model
# (assertions and invalid end states; depth-first) must report 0 errors
# and a completed search, and, where the model has an ltl property, an
# acceptance-cycle search of it must report 0 errors too.  For each buggy
# variant (-DVARIANT_...): a breadth-first safety search (so the trail is
# a shortest one) must find an error, and the trail, replayed with
# `spin -t`, must stop at an assertion whose source line carries the
# expected property tag ([tag] in a comment; see the head of each model).
# A variant that fails for another reason (another property, an invalid
# end state, a model bug) is not counted as caught.  Liveness variants
# must produce an acceptance cycle of the named ltl claim.
#
# Prints `PASS name` or `FAIL name` per check, then `N passed, M failed`;
# exit 0 iff every check passed, 77 (skip) if spin is not installed.
# Works from any directory; builds in a temporary directory it removes.
# Deterministic: the searches are exhaustive (no bitstate, no random
# seeds), so every run gives the same result and the same trails.
#
# Measured: 13 checks in 12.6-15.1 s wall (three runs, sequential, on the
# 2-core machine this was written on, with spin 6.5.2 and gcc 12 -O0,
# while other jobs used the machine).  Most of it is compiling pan: -O0
# compiles in a third of the time of -O2 and these searches are small
# (at most ~0.8 M states).
#
# Usage: models/check.sh [-v]    (-v: show pan's output and the trails)

set -u

verbose=0
[ "${1:-}" = "-v" ] && verbose=1

if ! command -v spin >/dev/null 2>&1; then
	echo "SKIP: spin is not installed (Debian: apt-get install spin)"
	exit 77
fi

here=$(cd "$(dirname "$0")" && pwd)
if ! command -v gcc >/dev/null 2>&1; then
	echo "FAIL: gcc is not installed (needed to compile spin's verifier)"
	echo "0 passed, 1 failed"
	exit 1
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/tdpmmu-models.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT TERM

# State vectors are ~100 bytes; 512 leaves room.  MEMLIM (MB) bounds a
# model change that explodes the search, instead of eating the machine.
CFLAGS="-O0 -w -DVECTORSZ=512 -DMEMLIM=2048"
PANFLAGS="-m20000 -w22"

passed=0
failed=0
n=0

say() {
	[ "$verbose" = 1 ] && sed 's/^/    /' "$1"
	return 0
}

result() {	# result NAME OK WHY
	if [ "$2" = 1 ]; then
		echo "PASS $1"
		passed=$((passed + 1))
	else
		echo "FAIL $1${3:+: $3}"
		failed=$((failed + 1))
	fi
}

# build DIR MODEL CFLAGS... -- DEFINES...: spin -a and gcc in DIR
build() {
	dir=$1 model=$2
	shift 2
	cflags=
	while [ $# -gt 0 ] && [ "$1" != "--" ]; do
		cflags="$cflags $1"
		shift
	done
	[ $# -gt 0 ] && shift
	defs="$*"
	mkdir -p "$dir" &&
	cp "$here/$model" "$dir/" &&
	(cd "$dir" && spin $defs -a "$model" >spin.log 2>&1 &&
		gcc $CFLAGS $cflags -o pan pan.c >gcc.log 2>&1)
}

# why the build in $dir failed: the first error line of spin or gcc
build_error() {
	echo "build failed: $(cat "$dir/spin.log" "$dir/gcc.log" 2>/dev/null |
		grep -m1 -i 'error' || echo '?')"
}

# check_ok NAME MODEL [ltl CLAIM]: the correct model, 0 errors
check_ok() {
	name=$1 model=$2
	n=$((n + 1))
	dir="$tmp/$n"
	if [ "${3:-}" = ltl ]; then
		build "$dir" "$model" -- ||
			{ result "$name" 0 "$(build_error)"; return; }
		(cd "$dir" && ./pan $PANFLAGS -a -N "$4" >pan.out 2>&1)
	else
		build "$dir" "$model" -DSAFETY -DNOCLAIM -- ||
			{ result "$name" 0 "$(build_error)"; return; }
		(cd "$dir" && ./pan $PANFLAGS >pan.out 2>&1)
	fi
	say "$dir/pan.out"
	if ! grep -q 'errors: 0$' "$dir/pan.out"; then
		result "$name" 0 "$(grep -m1 '^pan:1:' "$dir/pan.out")"
	elif grep -q 'Search not completed\|max search depth too small\|reached -DMEMLIM bound' \
		"$dir/pan.out"; then
		result "$name" 0 "search incomplete"
	elif [ "${3:-}" = ltl ] && ! grep -q "never claim.*+ ($4)" "$dir/pan.out"; then
		result "$name" 0 "claim $4 not checked"
	else
		result "$name" 1
	fi
}

# check_bug NAME MODEL VARIANT TAG: a breadth-first safety search must stop
# at an assertion whose line carries [TAG]
check_bug() {
	name=$1 model=$2 variant=$3 tag=$4
	n=$((n + 1))
	dir="$tmp/$n"
	build "$dir" "$model" -DBFS -DSAFETY -DNOCLAIM -- "-DVARIANT_$variant" ||
		{ result "$name" 0 "$(build_error)"; return; }
	(cd "$dir" && ./pan $PANFLAGS >pan.out 2>&1)
	say "$dir/pan.out"
	if [ ! -f "$dir/$model.trail" ]; then
		result "$name" 0 "no counterexample"
		return
	fi
	(cd "$dir" && spin "-DVARIANT_$variant" -t "$model" >trail.out 2>&1)
	say "$dir/trail.out"
	line=$(sed -n "s/^spin: $model:\([0-9]*\), Error: assertion violated.*/\1/p" \
		"$dir/trail.out" | head -n 1)
	if [ -z "$line" ]; then
		result "$name" 0 "not an assertion: $(grep -m1 '^pan:1:' "$dir/pan.out")"
		return
	fi
	got=$(sed -n "${line}p" "$here/$model" | sed -n 's/.*\/\* *\[\([a-z-]*\)\].*/\1/p')
	if [ "$got" = "$tag" ]; then
		result "$name" 1
	else
		result "$name" 0 "stopped at $model:$line [${got:-untagged}], expected [$tag]"
	fi
}

# check_cycle NAME MODEL VARIANT CLAIM: an acceptance cycle of CLAIM
check_cycle() {
	name=$1 model=$2 variant=$3 claim=$4
	n=$((n + 1))
	dir="$tmp/$n"
	build "$dir" "$model" -- "-DVARIANT_$variant" ||
		{ result "$name" 0 "$(build_error)"; return; }
	# -A: assertions off, so the search is for the claim alone
	(cd "$dir" && ./pan $PANFLAGS -a -A -N "$claim" >pan.out 2>&1)
	say "$dir/pan.out"
	if ! grep -q '^pan:1: acceptance cycle' "$dir/pan.out" ||
		! grep -q "never claim.*+ ($claim)" "$dir/pan.out" ||
		[ ! -f "$dir/$model.trail" ]; then
		result "$name" 0 "no acceptance cycle of $claim"
		return
	fi
	(cd "$dir" && spin "-DVARIANT_$variant" -t "$model" >trail.out 2>&1)
	say "$dir/trail.out"
	if grep -q 'START OF CYCLE' "$dir/trail.out"; then
		result "$name" 1
	else
		result "$name" 0 "trail does not replay a cycle"
	fi
}

# root.pml: the root lifecycle (root.c, mmu.c, vcpu.c)
check_ok    root                       root.pml
check_ok    root/ltl-no_leak           root.pml ltl no_leak
check_bug   root/a-dec-not-one         root.pml DEC_NOT_ONE free-held
check_bug   root/b-put-leak            root.pml PUT_LEAK no-leak
check_cycle root/b-put-leak/ltl        root.pml PUT_LEAK no_leak
check_bug   root/c-invalidate-check-then-act root.pml INVALIDATE_CHECK_THEN_ACT mmu-ref-twice
check_bug   root/c2-zap-take-check-then-act  root.pml ZAP_TAKE_CHECK_THEN_ACT mmu-ref-twice
check_bug   root/free-no-grace         root.pml FREE_NO_GRACE uaf

# rmap.pml: the rmap head lock bit (rmap.c)
check_ok    rmap                       rmap.pml
check_bug   rmap/d-early-unlock        rmap.pml EARLY_UNLOCK torn
check_bug   rmap/d2-early-unlock-before-more rmap.pml EARLY_UNLOCK_BEFORE_MORE free-walked
check_bug   rmap/unlocked-update       rmap.pml UNLOCKED_UPDATE spte-uaf
check_bug   rmap/lockless-assert       rmap.pml LOCKLESS_ASSERT present

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
