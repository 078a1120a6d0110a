#!/usr/bin/env bash
# One training epoch (48 videos) of the L2G experiment's tiny online VIS model: Certify (`certify l2g experiment --epochs 1`,
# release build, Float64) against the equivalent PyTorch CPU script (bench/l2g_epoch_torch.py, Float64, one thread), both arms,
# in the same run, best of $ROUNDS (default 3) interleaved runs per side. The ratio is Certify's training time over PyTorch's (lower is faster).
# usage: bench/l2g_epoch_bench.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export OPENBLAS_NUM_THREADS=1 CERTIFY_BLAS_THREADS=1
ROUNDS="${ROUNDS:-3}"  # fresh runs of each side, interleaved; each side's best is kept
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
min() { /usr/bin/python3 -c "import sys; print(min(float(x) for x in sys.argv[1:]))" "$@"; }
cl=(); cp=(); tl=(); tp=()
for ((r = 1; r <= ROUNDS; r++)); do
  .build/release/certify l2g experiment --seeds 1 --epochs 1 --train 48 --test 4 --json "$tmp/e.json" > /dev/null 2>&1
  read -r a b < <(/usr/bin/python3 -c "import json; r = json.load(open('$tmp/e.json')); r = r['runs'] if isinstance(r, dict) else r; d = {x['arm']: x['trainSeconds'] for x in r}; print(d['L2G-aligner'], d['plain propagation'])")
  cl+=("$a"); cp+=("$b")
  tl+=("$(/usr/bin/python3 bench/l2g_epoch_torch.py --arm l2g | sed -E 's/.* in ([0-9.]+) s.*/\1/')")
  tp+=("$(/usr/bin/python3 bench/l2g_epoch_torch.py --arm propagation | sed -E 's/.* in ([0-9.]+) s.*/\1/')")
done
c_l2g=$(min "${cl[@]}"); c_prop=$(min "${cp[@]}"); t_l2g=$(min "${tl[@]}"); t_prop=$(min "${tp[@]}")
echo "arm | certify s | pytorch s | ratio"
echo "L2G-aligner | $c_l2g | $t_l2g | $(echo "scale=3; $c_l2g / $t_l2g" | bc)"
echo "plain propagation | $c_prop | $t_prop | $(echo "scale=3; $c_prop / $t_prop" | bc)"
