#!/bin/sh
# check-layers.sh LAYERS SRCDIR OBJECT|DIR|LIST...  - fail when src/ breaks its
# layering (src/LAYERS): an include of a higher layer's header, a symbol
# of a higher layer's object, a module missing from the list, or a cycle
# in the objects' call graph (defined vs undefined symbols, nm).
set -eu
layers=$1 src=$2
shift 2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# a directory stands for the objects under it, a .list file for the
# objects it names (one per line)
for a in "$@"; do
	case $a in
	*.list) grep . "$a" ;;
	*) if [ -d "$a" ]; then find "$a" -name '*.o'; else echo "$a"; fi ;;
	esac
done | sort > "$tmp/objs"
set -- $(cat "$tmp/objs")
[ $# -gt 0 ] || { echo "layers: no objects" >&2; exit 1; }

# module -> layer rank: rank M sets R (empty for a module in no layer).
# Both helpers run in the shell itself, with no process per lookup (an
# awk per lookup made the check take 10 s, 30 s under load).
awk -F: '/^[a-z]/ { n++; split($2, m, " "); for (i in m) print m[i], n }' \
	"$layers" | sort > "$tmp/rank"
{
	echo 'rank() { case $1 in'
	awk '{ print "\t" $1 ") R=" $2 " ;;" }' "$tmp/rank"
	echo '	*) R= ;;'
	echo '	esac; }'
} > "$tmp/rank.sh"
. "$tmp/rank.sh"
mod_of() { # a path under src/ (or an object built from one) -> module M
	M=${1##*/src/}
	M=${M#src/}
	M=${M%.c.o}
	M=${M%.[ch]}
}
fail=0
problem() { echo "layers: $*" >&2; fail=1; }

# includes
for f in "$src"/*.[ch] "$src"/host/*.[ch]; do
	[ -e "$f" ] || continue
	mod_of "$f"
	m=$M
	rank "$m"
	r=$R
	[ -n "$r" ] || { problem "$m is in no layer of $layers"; continue; }
	for h in $(sed -n 's/^#include "\(.*\)"$/\1/p' "$f"); do
		# as the compiler finds it: next to the file, in src/, in
		# include/ (the public header, module tdpmmu)
		if [ -e "${f%/*}/$h" ]; then
			mod_of "${f%/*}/$h"
			hm=$M
		elif [ -e "$src/$h" ]; then
			mod_of "$h"
			hm=$M
		else
			hm=${h##*/}
			hm=${hm%.h}
		fi
		[ "$hm" = "$m" ] && continue
		rank "$hm"
		hr=$R
		[ -n "$hr" ] || { problem "$f includes $h, in no layer"; continue; }
		[ "$hr" -le "$r" ] ||
			problem "$f (layer $r) includes $h (layer $hr, higher)"
	done
done

# objects: who defines what, who uses what (one nm for all of them: -A
# puts each object's path before its lines; the module comes from it)
modules='{ f = $1; sub(/:[^:]*$/, "", f); sub(/.*\/src\//, "", f);
	   sub(/^src\//, "", f); sub(/\.c\.o$/, "", f) }'
nm -A --defined-only "$@" |
	awk "$modules"' NF == 3 && $2 ~ /[TDBRV]/ { print $3, f }' |
	sort > "$tmp/defs"
nm -A -u "$@" | awk "$modules"' { print $NF, f }' | sort > "$tmp/uses"
join "$tmp/uses" "$tmp/defs" | awk '$2 != $3 {print $2, $3}' | sort -u \
	> "$tmp/edges"
[ -s "$tmp/edges" ] || problem "no edges between objects: wrong object list?"
while read -r a b; do
	rank "$a"
	ra=$R
	rank "$b"
	rb=$R
	[ -n "$ra" ] || { problem "object $a is in no layer"; continue; }
	[ -n "$rb" ] || continue # reported as $a's own line
	[ "$rb" -le "$ra" ] ||
		problem "$a (layer $ra) uses $b (layer $rb, higher):" \
			"$(join "$tmp/uses" "$tmp/defs" |
			   awk -v a="$a" -v b="$b" '$2 == a && $3 == b {print $1}' |
			   head -3 | tr '\n' ' ')"
done < "$tmp/edges"
if ! tsort "$tmp/edges" > /dev/null 2> "$tmp/loop"; then
	problem "the objects' call graph has a cycle:" \
		"$(grep -v 'input contains' "$tmp/loop" | sed 's/^tsort: //' | tr '\n' ' ')"
fi
n=$(wc -l < "$tmp/edges")
[ "$fail" = 0 ] && echo "layers: $# objects, $n edges, no cycle, every include and call downward or within a layer"
exit "$fail"
