#!/usr/bin/env bash
# Benchmarks forward + backward of the certified ops against PyTorch CPU, both single-threaded and
# Float64, in the same run: best of ≥ $REPEATS runs (default 5) and ≥ $MIN_TIME s per case (default 1).
# Prints Certify's time, PyTorch's and the ratio per case. Extra arguments go to `certify bench`
# (e.g. --only mha). Timings land in .build/bench/{torch,certify}.json.
set -euo pipefail
cd "$(dirname "$0")/.."
REPEATS="${REPEATS:-5}"
MIN_TIME="${MIN_TIME:-1}"
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 CERTIFY_BLAS_THREADS=1
# OpenBLAS picks its kernels from the CPU model; in VMs that hide the model (lscpu: "Intel(R) Xeon(R)
# Processor") it falls back to the generic Prescott kernel, ~8× slower for dgemm. Choose the kernel from
# the CPU flags unless the caller set one.
if [[ -z "${OPENBLAS_CORETYPE:-}" ]]; then
  if grep -qw avx512f /proc/cpuinfo 2>/dev/null; then export OPENBLAS_CORETYPE=SkylakeX
  elif grep -qw avx2 /proc/cpuinfo 2>/dev/null; then export OPENBLAS_CORETYPE=Haswell
  fi
fi
echo "OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-<auto>}, one thread on both sides" >&2
PYTHON="${PYTHON:-/usr/bin/python3}"
OUT="${BENCH_OUT:-.build/bench}"
mkdir -p "$OUT"

swift build -c release --product certify
ONLY=()
for ((i = 1; i <= $#; i++)); do
  if [[ "${!i}" == "--only" ]]; then j=$((i + 1)); ONLY=(--only "${!j}"); fi
done
"$PYTHON" bench/torch_bench.py --repeats "$REPEATS" --min-time "$MIN_TIME" "${ONLY[@]}" > "$OUT/torch.json"
.build/release/certify bench --repeats "$REPEATS" --min-time "$MIN_TIME" --torch-json "$OUT/torch.json" --json-out "$OUT/certify.json" "$@"
