#!/bin/sh
# A migration between two processes on loopback: a destination
# (tdpmmu migrate --listen on a free port) and a source sending to it.
# Passes when both exit 0, i.e. both verified every page.
# usage: migrate_net.sh TDPMMU WORKDIR [destination options] -- [source options]
set -u
cli=$1
dir=$2
shift 2
dst_opts=""
while [ $# -gt 0 ] && [ "$1" != "--" ]; do
	dst_opts="$dst_opts $1"
	shift
done
[ $# -gt 0 ] && shift
rm -rf "$dir"
mkdir -p "$dir"
# shellcheck disable=SC2086 # the options are words
"$cli" migrate --listen 127.0.0.1:0 --port-file "$dir/port" $dst_opts \
	>"$dir/dst.out" 2>&1 &
dst=$!
# the port file appears once the destination listens (a hang bound only)
i=0
while [ ! -f "$dir/port" ]; do
	if ! kill -0 "$dst" 2>/dev/null || [ $i -ge 600 ]; then
		echo "the destination did not start listening"
		cat "$dir/dst.out"
		kill "$dst" 2>/dev/null
		exit 1
	fi
	i=$((i + 1))
	sleep 0.1
done
"$cli" migrate --to "127.0.0.1:$(cat "$dir/port")" "$@" >"$dir/src.out" 2>&1
src=$?
wait "$dst"
d=$?
echo "== source (exit $src)"
cat "$dir/src.out"
echo "== destination (exit $d)"
cat "$dir/dst.out"
# a destination on a backend this machine cannot have: skipped
if grep -q "cannot build the VM: Operation not supported" "$dir/dst.out"; then
	exit 77
fi
[ "$src" -eq 0 ] && [ "$d" -eq 0 ]
