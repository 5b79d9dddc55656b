#!/usr/bin/env bash
# Measures the detection power of the torture for every bug injection,
# over SEEDS seeds (default 20) in each of two modes, and writes the table
# of docs/torture.md (between the markers):
#   controlled: the build's controlled scheduler (TDP_SCHED), with the
#     strategy, step bound and options of tests/injections-sched.list:
#     caught or not within the bound, and at which step (deterministic:
#     the same figures on every machine);
#   free-running: a Debug build with TDP_INJECT, the options of
#     tests/injections.list, 30 s a run: caught or not, and when (the
#     machine's luck: these figures vary from run to run).
# Usage: scripts/torture-report.sh SCHED_BUILD FREE_BUILD [NAME...]
#   With NAMEs only those injections are measured; the table keeps its
#   other rows.  SEEDS=n changes the seed count; FREE=0 skips the
#   free-running runs (a row keeps its free-running columns, or says "not
#   measured"); CONTROLLED=0
#   skips the controlled runs and keeps the row's controlled columns.
set -euo pipefail
sched_cli="$1/tdpmmu"
free_cli="$2/tdpmmu"
shift 2
only=" $* "
here="$(cd "$(dirname "$0")" && pwd)"
doc="$here/../docs/torture.md"
slist="$here/../tests/injections-sched.list"
flist="$here/../tests/injections.list"
nseeds=${SEEDS:-20}
free=${FREE:-1}
controlled=${CONTROLLED:-1}
table=$(mktemp)
work=$(mktemp -d)
trap 'rm -rf "$work" "$table"' EXIT

# p50 and p90 (nearest rank) of the numbers on stdin, or "-"
pct() {
  sort -g | awk '{a[NR] = $1}
    END { if (!NR) { print "-"; exit }
          i = int((NR + 1) / 2); j = int((NR * 9 + 9) / 10); if (j > NR) j = NR
          print a[i] " / " a[j] }'
}

# One controlled run: prints "caught STEP ORACLE" or "missed STEPS".
controlled() {
  local inj=$1 strat=$2 bound=$3 seed=$4
  shift 4
  local out steps orc
  out=$("$sched_cli" torture --sched "$strat" --steps "$bound" --seed "$seed" \
        --inject "$inj" --quiet "$@" 2>/dev/null || true)
  steps=$(echo "$out" | grep -oE "sched: step [0-9]+|[0-9]+ steps, trace" | head -1 | grep -oE "[0-9]+" | head -1)
  if echo "$out" | grep -q "^torture: FAILED"; then
    orc=$(echo "$out" | grep -m1 "^torture: FAILED" | sed -E 's/^torture: FAILED: oracle=(.*) at [0-9.]+ s \(seed [0-9]+\).*/\1/; s/ \(library invariant check or sanitizer\)//')
    echo "caught $steps $orc"
  else
    echo "missed $steps"
  fi
}
export -f controlled
export sched_cli

{
  echo "| injection | controlled: run with | caught (of $nseeds seeds) | steps to catch, p50 / p90 | caught by | free-running: caught (of $nseeds, 30 s) | seconds to catch, p50 / p90 |"
  echo "|---|---|---|---|---|---|---|"
  for inj in $("$sched_cli" torture --help | sed -n 's/^injections[^:]*: //p'); do
    sline=$(awk -v n="$inj" '$1 == n' "$slist")
    [ -n "$sline" ] || { echo "$inj missing from $slist" >&2; exit 1; }
    grep -qE "^$inj( |$)" "$flist" || { echo "$inj missing from $flist" >&2; exit 1; }
    if [ "$only" != "  " ] && [[ "$only" != *" $inj "* ]]; then
      row=$(grep -F "| \`$inj\` |" "$doc" || true)
      [ -n "$row" ] || { echo "$inj has no row in $doc: measure it too" >&2; exit 1; }
      echo "$row"
      continue
    fi
    read -r _ strat bound sopts <<<"$sline"
    if [ "$controlled" = 0 ]; then
      old=$(grep -F "| \`$inj\` |" "$doc" || true)
      [ -n "$old" ] || { echo "$inj has no row in $doc to keep" >&2; exit 1; }
      ccols=$(echo "$old" | awk -F' [|] ' '{print $2 " | " $3 " | " $4 " | " $5}')
    fi
    # controlled: two at a time (each run is one thread at a time)
    [ "$controlled" = 0 ] ||
    # shellcheck disable=SC2086
    seq 1 "$nseeds" | xargs -P 2 -I{} bash -c \
      "controlled $inj $strat $bound {} $sopts > $work/c.{}"
    chits=0; : > "$work/csteps"; : > "$work/corc"
    for s in $(seq 1 "$nseeds"); do
      [ "$controlled" = 0 ] && break
      read -r verdict steps orc < "$work/c.$s" || true
      if [ "$verdict" = caught ]; then
        chits=$((chits + 1)); echo "$steps" >> "$work/csteps"; echo "$orc" >> "$work/corc"
      fi
    done
    corc=$(sort "$work/corc" | uniq -c | sort -rn | awk '{$1=""; print substr($0,2)}' | paste -sd ';' | sed 's/;/; /g')
    # free-running, one at a time (they use every core)
    fargs=$(awk -v n="$inj" '$1 == n { $1 = ""; print substr($0, 2) }' "$flist")
    fhits="not measured"; ftimes="-"
    old=$(grep -F "| \`$inj\` |" "$doc" || true)
    if [ "$free" = 0 ] && [ -n "$old" ]; then
      fhits=$(echo "$old" | awk -F' [|] ' '{print $6}')
      ftimes=$(echo "$old" | awk -F' [|] ' '{print $7}' | sed 's/ |$//')
    fi
    if [ "$free" != 0 ]; then
      fhits=0; : > "$work/ftimes"
      for s in $(seq 1 "$nseeds"); do
        # shellcheck disable=SC2086
        line=$("$free_cli" torture --inject "$inj" --duration 30 --seed "$s" --quiet $fargs 2>/dev/null | grep -m1 "^torture: FAILED" || true)
        if [ -n "$line" ]; then
          fhits=$((fhits + 1))
          echo "$line" | sed -E 's/.* at ([0-9.]+) s .*/\1/' >> "$work/ftimes"
        fi
      done
      ftimes=$(pct < "$work/ftimes")
      fhits="$fhits / $nseeds"
    fi
    [ "$controlled" = 0 ] ||
      ccols="--sched $strat --steps $bound${sopts:+ $sopts} | $chits / $nseeds | $(pct < "$work/csteps") | ${corc:--}"
    echo "| \`$inj\` | $ccols | $fhits | $ftimes |"
  done
} > "$table"
awk -v tf="$table" '
  /<!-- table begin -->/ { print; while ((getline l < tf) > 0) print l; skip = 1; next }
  /<!-- table end -->/ { skip = 0 }
  !skip { print }' "$doc" > "$doc.new" && mv "$doc.new" "$doc"
echo "updated $doc"
