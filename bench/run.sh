#!/usr/bin/env bash
# Benchmarks the certified ops and the papers' end-to-end workloads against PyTorch CPU, both single-threaded and
# Float64, in the same run. Op cases: forward + backward, best of ≥ $REPEATS runs (default 5) and ≥ $MIN_TIME s
# (default 1) after a warm-up; end-to-end cases (e2e_*): best of $E2E_REPEATS runs (default 1), no warm-up.
# The two sides are interleaved per case (PyTorch, then Certify), so a change in the machine's load hits both.
# Every case runs in $ROUNDS (default 3) fresh process pairs, and each side's time is the best over the rounds:
# one process's memory layout can make a case 10-30 % slower on either side for its whole life, which a best-of
# inside one process cannot see.
# Then, unless --only is given (or --only papers), the new papers' own bench scripts (DARTS-GT search epoch,
# L2G training epoch), also best of $ROUNDS rounds. Prints a markdown table (case, Certify s, PyTorch s, ratio)
# and the load average.
#
#   bench/run.sh                          # everything
#   bench/run.sh --only mha               # cases whose name contains "mha" (several: --only conv1d,e2e_lava)
#   bench/run.sh --only papers            # only the papers' bench scripts
#   REPEATS=10 MIN_TIME=2 bench/run.sh
#
# Timings land in $BENCH_OUT (default .build/bench): torch.json, certify.json, table.md.
set -euo pipefail
cd "$(dirname "$0")/.."
REPEATS="${REPEATS:-5}"
MIN_TIME="${MIN_TIME:-1}"
E2E_REPEATS="${E2E_REPEATS:-1}"
export ROUNDS="${ROUNDS:-3}"
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 CERTIFY_BLAS_THREADS=1
# OpenBLAS picks its kernels from the CPU model; in VMs that hide the model (lscpu: "Intel(R) Xeon(R)
# Processor") it falls back to the generic Prescott kernel, ~8× slower for dgemm. Choose the kernel from
# the CPU flags unless the caller set one.
if [[ -z "${OPENBLAS_CORETYPE:-}" ]]; then
  if grep -qw avx512f /proc/cpuinfo 2>/dev/null; then export OPENBLAS_CORETYPE=SkylakeX
  elif grep -qw avx2 /proc/cpuinfo 2>/dev/null; then export OPENBLAS_CORETYPE=Haswell
  fi
fi
echo "OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-<auto>}, one thread on both sides; $(uptime | sed 's/.*load/load/')" >&2
PYTHON="${PYTHON:-/usr/bin/python3}"
OUT="${BENCH_OUT:-.build/bench}"
mkdir -p "$OUT/cases"

ONLY=""
for ((i = 1; i <= $#; i++)); do
  if [[ "${!i}" == "--only" ]]; then j=$((i + 1)); ONLY="${!j}"; fi
done

swift build -c release --product certify
CERTIFY=.build/release/certify

if [[ "$ONLY" != "papers" ]]; then
  rm -f "$OUT"/cases/*.json
  mapfile -t CASES < <("$PYTHON" bench/torch_bench.py --list ${ONLY:+--only "$ONLY"} | grep .)
  [[ ${#CASES[@]} -gt 0 ]] || { echo "no benchmark case matches --only $ONLY" >&2; exit 1; }
  for c in "${CASES[@]}"; do
    for ((r = 1; r <= ROUNDS; r++)); do
      "$PYTHON" bench/torch_bench.py --repeats "$REPEATS" --min-time "$MIN_TIME" --e2e-repeats "$E2E_REPEATS" --only "$c" \
        > "$OUT/cases/torch-$c-$r.json"
      "$CERTIFY" bench --repeats "$REPEATS" --min-time "$MIN_TIME" --e2e-repeats "$E2E_REPEATS" --only "$c" \
        --json-out "$OUT/cases/certify-$c-$r.json" > /dev/null
    done
  done
  "$PYTHON" - "$OUT" "${CASES[@]}" <<'EOF'
import json, os, sys
out, cases = sys.argv[1], sys.argv[2:]
rounds = int(os.environ["ROUNDS"])
merged = {}
for side in ("torch", "certify"):
    r = {}
    for c in cases:
        for k in range(1, rounds + 1):
            for name, t in json.load(open(os.path.join(out, "cases", f"{side}-{c}-{k}.json")))["results"].items():
                r[name] = min(t, r.get(name, t))
    merged[side] = r
    json.dump({"results": r}, open(os.path.join(out, f"{side}.json"), "w"), indent=2, sort_keys=True)
lines = ["| case | Certify s | PyTorch s | ratio |", "|---|---:|---:|---:|"]
for c in cases:
    t, p = merged["certify"].get(c), merged["torch"].get(c)
    lines.append(f"| {c} | {t:.4f} | {p:.4f} | {t / p:.2f}× |" if t and p else f"| {c} | {t} | {p} | — |")
table = "\n".join(lines)
open(os.path.join(out, "table.md"), "w").write(table + "\n")
print(table)
EOF
fi

if [[ -z "$ONLY" || "$ONLY" == "papers" ]]; then
  echo
  echo "## The papers' own bench scripts"
  if [[ -x golden/.venv/bin/python ]]; then
    echo "### DARTS-GT: one search epoch"
    golden/.venv/bin/python bench/dartsgt_search_bench.py --certify "$CERTIFY" --rounds "$ROUNDS" --epochs 20
  else
    echo "(DARTS-GT search bench skipped: golden/.venv missing; make venv)"
  fi
  echo "### L2G: one training epoch"
  bench/l2g_epoch_bench.sh
  echo "(NRR-DD: teacher training and one NRR pass take minutes per side; see bench/README.md, NRR-DD section)"
fi
echo "$(uptime | sed 's/.*load/load/')" >&2
