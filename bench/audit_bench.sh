#!/bin/bash
# Issue 6, item 9: the audit of one method (gradient, standard model; 5 values of k × 2 masks × 3 seeds)
# on BlockMNIST built from Fashion-MNIST with a two-hidden-layer MLP, timed for Certify and for the
# equivalent PyTorch CPU script (bench/audit_bench.py) on the same data, in the same run.
# usage: bench/audit_bench.sh [OUTDIR]     (release build; 2 cores: Certify --jobs 2, PyTorch 2 worker processes)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-$(mktemp -d)}
mkdir -p "$out"
swift build -c release --product certify > /dev/null
B=.build/release/certify
# OpenBLAS kernels from the CPU flags (see README: VMs that hide the CPU model fall back to Prescott);
# both sides load the same OpenBLAS, so both get the same kernels.
if [[ -z "${OPENBLAS_CORETYPE:-}" ]]; then
  if grep -qw avx512f /proc/cpuinfo 2>/dev/null; then export OPENBLAS_CORETYPE=SkylakeX
  elif grep -qw avx2 /proc/cpuinfo 2>/dev/null; then export OPENBLAS_CORETYPE=Haswell
  fi
fi
echo "OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-<auto>}; Certify: 2 runs at a time, 1 BLAS thread each; PyTorch: 2 worker processes, 1 thread each" >&2
export CERTIFY_BLAS_THREADS=1
t0=$(date +%s.%N)
$B blockmnist export --out "$out/blockmnist.h5"
t1=$(date +%s.%N)
$B audit --method gradient --model standard --jobs 2 --json "$out/certify.json" --svg "$out/certify.svg" > "$out/certify.txt" 2> "$out/certify.log"
t2=$(date +%s.%N)
OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 /usr/bin/python3 bench/audit_bench.py --data "$out/blockmnist.h5" --jobs 2 --threads 1 --json "$out/torch.json" > "$out/torch.txt"
t3=$(date +%s.%N)
/usr/bin/python3 - "$t0" "$t1" "$t2" "$t3" "$out" <<'PY'
import json, sys
t0, t1, t2, t3 = map(float, sys.argv[1:5]); out = sys.argv[5]
c = json.load(open(f"{out}/certify.json")); t = json.load(open(f"{out}/torch.json"))
certify, torch_s = t2 - t1, t3 - t2
print(f"export {t1 - t0:.1f} s; certify audit {certify:.1f} s; pytorch {torch_s:.1f} s; ratio certify/pytorch {certify / torch_s:.2f}")
for a, b in zip(c["diffROAR"], t["diffroar"]):
    print(f"k = {a['k']:.2f}: certify {a['mean']:+.4f} ± {a['std']:.4f}   pytorch {b['mean']:+.4f} ± {b['std']:.4f}")
PY
