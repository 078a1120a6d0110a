#!/usr/bin/env bash
# One training epoch (48 videos) of the L2G experiment's tiny online VIS model: Certify (`certify l2g experiment --epochs 1`,
# release build, Float64) against the equivalent PyTorch CPU script (bench/l2g_epoch_torch.py, Float64, one thread), both arms,
# in the same run. The ratio is Certify's training time over PyTorch's (lower is faster).
# usage: bench/l2g_epoch_bench.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export OPENBLAS_NUM_THREADS=1 CERTIFY_BLAS_THREADS=1
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
.build/release/certify l2g experiment --seeds 1 --epochs 1 --train 48 --test 4 --json "$tmp/e.json" > /dev/null 2>&1
read -r c_l2g c_prop < <(/usr/bin/python3 -c "import json; r = json.load(open('$tmp/e.json')); r = r['runs'] if isinstance(r, dict) else r; d = {x['arm']: x['trainSeconds'] for x in r}; print(d['L2G-aligner'], d['plain propagation'])")
t_l2g=$(/usr/bin/python3 bench/l2g_epoch_torch.py --arm l2g | sed -E 's/.* in ([0-9.]+) s.*/\1/')
t_prop=$(/usr/bin/python3 bench/l2g_epoch_torch.py --arm propagation | sed -E 's/.* in ([0-9.]+) s.*/\1/')
echo "arm | certify s | pytorch s | ratio"
echo "L2G-aligner | $c_l2g | $t_l2g | $(echo "scale=3; $c_l2g / $t_l2g" | bc)"
echo "plain propagation | $c_prop | $t_prop | $(echo "scale=3; $c_prop / $t_prop" | bc)"
