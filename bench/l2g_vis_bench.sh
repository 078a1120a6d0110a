#!/usr/bin/env bash
# `certify vis-eval` against the pycocotools-based Python reference (bench/l2g_vis_eval.py) on the same synthetic YouTube-VIS
# files, in the same run: both outputs are compared bit for bit, then each command is timed REPEATS times, alternating; the
# best wall-clock time of each (whole process: start-up, reading the JSON, evaluating, writing the JSON) gives the ratio.
# usage: bench/l2g_vis_bench.sh [DIR]   (needs `make venv` and .build/release/certify)
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=${1:-$(mktemp -d)}
PY=golden/.venv/bin/python
CERTIFY=.build/release/certify
REPEATS=${REPEATS:-5}
[ -f "$DIR/gt.json" ] || $PY bench/l2g_vis_eval.py make "$DIR"
$PY bench/l2g_vis_eval.py eval "$DIR/gt.json" "$DIR/results.json" "$DIR/reference.json" > /dev/null
$CERTIFY vis-eval "$DIR/gt.json" "$DIR/results.json" --json "$DIR/certify.json" > /dev/null 2>&1
$PY bench/l2g_vis_eval.py compare "$DIR/reference.json" "$DIR/certify.json"
best() { sort -g | head -1; }
t_ref=(); t_cer=()
for i in $(seq "$REPEATS"); do
  s=$(date +%s.%N); $PY bench/l2g_vis_eval.py eval "$DIR/gt.json" "$DIR/results.json" "$DIR/reference.json" > /dev/null; e=$(date +%s.%N)
  t_ref+=("$(echo "$e - $s" | bc)")
  s=$(date +%s.%N); $CERTIFY vis-eval "$DIR/gt.json" "$DIR/results.json" --json "$DIR/certify.json" > /dev/null 2>&1; e=$(date +%s.%N)
  t_cer+=("$(echo "$e - $s" | bc)")
done
r=$(printf '%s\n' "${t_ref[@]}" | best); c=$(printf '%s\n' "${t_cer[@]}" | best)
echo "python reference (pycocotools): best of $REPEATS: ${r} s"
echo "certify vis-eval:               best of $REPEATS: ${c} s"
echo "ratio certify / reference: $(echo "scale=3; $c / $r" | bc)"
