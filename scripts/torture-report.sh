#!/usr/bin/env bash
# Measures, for every bug injection, which oracle catches it and how fast,
# over 5 seeds, and writes docs/torture.md's table (between the markers).
# Usage: scripts/torture-report.sh BUILD_DIR [NAME...]
#   BUILD_DIR: a build with TDP_INJECT=ON.  With NAMEs, only those
#   injections are measured; the table keeps its other rows as they are.
set -euo pipefail
cli="$1/tdpmmu"
shift
only=" $* "
doc="$(dirname "$0")/../docs/torture.md"
seeds="1 2 3 4 5"
table=$(mktemp)
{
  echo "| injection | run with | caught by | detected (of 5 seeds, within 30 s) | median detection time |"
  echo "|---|---|---|---|---|"
  list="$(dirname "$0")/../tests/injections.list"
  for inj in $("$cli" torture --help | sed -n 's/^injections[^:]*: //p'); do
    args=$(awk -v n="$inj" '$1 == n { $1 = ""; print substr($0, 2) }' "$list")
    grep -qE "^$inj( |$)" "$list" || { echo "$inj missing from $list" >&2; exit 1; }
    if [ "$only" != "  " ] && [[ "$only" != *" $inj "* ]]; then
      # not asked for: keep its row (it must have one)
      row=$(grep -F "| \`$inj\` |" "$doc" || true)
      [ -n "$row" ] || { echo "$inj has no row in $doc: measure it too" >&2; exit 1; }
      echo "$row"
      continue
    fi
    times=(); oracles=(); hits=0
    err=$(mktemp)
    for s in $seeds; do
      # shellcheck disable=SC2086
      out=$("$cli" torture --inject "$inj" --duration 30 --seed "$s" --quiet $args 2>"$err" || true)
      line=$(echo "$out" | grep -E "^torture: FAILED: oracle=" | head -1 || true)
      if [ -n "$line" ]; then
        hits=$((hits + 1))
        orc=$(echo "$line" | sed -E 's/^torture: FAILED: oracle=(.*) at [0-9.]+ s \(seed [0-9]+\).*/\1/')
        # name the library check that fired: "file: condition: message"
        bug=$(grep -m1 -E "tdpmmu BUG at " "$err" | sed -E 's|.*/src/([a-z_/]+\.[ch]):[0-9]+: |\1: |; s/ *\(?0x[0-9a-f]+\)?//g; s/ *\(gfn *\)//; s/: *$//' | cut -c1-90 || true)
        case "$orc" in assertion*) [ -n "$bug" ] && orc="assertion ($bug)";; esac
        oracles+=("$orc")
        times+=("$(echo "$line" | sed -E 's/^torture: FAILED: oracle=.* at ([0-9.]+) s \(seed [0-9]+\).*/\1/')")
      fi
    done
    rm -f "$err"
    if [ "$hits" -gt 0 ]; then
      med=$(printf "%s\n" "${times[@]}" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
      orc=$(printf "%s\n" "${oracles[@]}" | sort | uniq -c | sort -rn | awk '{$1=""; print substr($0,2)}' | paste -sd ';' | sed 's/;/; /g')
      echo "| \`$inj\` | ${args:-defaults} | $orc | $hits / 5 | ${med} s |"
    else
      echo "| \`$inj\` | ${args:-defaults} | (not detected) | 0 / 5 | - |"
    fi
  done
} > "$table"
awk -v tf="$table" '
  /<!-- table begin -->/ { print; while ((getline l < tf) > 0) print l; skip = 1; next }
  /<!-- table end -->/ { skip = 0 }
  !skip { print }' "$doc" > "$doc.new" && mv "$doc.new" "$doc"
echo "updated $doc"
