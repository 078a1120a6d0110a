#!/usr/bin/env bash
# certify diff against h5diff -p on two large files, in the same run: wall time and peak memory.
# usage: bench/diff_bench.sh [GIGABYTES]   (default 2; needs 2×size free disk in $TMPDIR)
set -euo pipefail
cd "$(dirname "$0")/.."
GB=${1:-2}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
swift build -c release --product certify >/dev/null
/usr/bin/python3 - "$dir" "$GB" <<'PY'
import sys, h5py, numpy as np
d, gb = sys.argv[1], float(sys.argv[2])
n = int(gb * 2**30 / 8)            # Float64 elements per file
rows = n // 1024
rng = np.random.Generator(np.random.PCG64(1))
with h5py.File(f"{d}/golden.h5", "w") as g, h5py.File(f"{d}/actual.h5", "w") as a:
    g.attrs["protocol"] = "bench.large"
    dg = g.create_dataset("case0/outputs/y", (rows, 1024), dtype="f8")
    da = a.create_dataset("case0/outputs/y", (rows, 1024), dtype="f8")
    step = 65536
    for r in range(0, rows, step):
        x = rng.standard_normal((min(step, rows - r), 1024)) + 3.0
        dg[r:r + len(x)] = x
        x[0, 0] *= 1 + 1e-6          # one real difference per block
        da[r:r + len(x)] = x
PY
ls -l "$dir"
measure() {  # prints "seconds maxrss_kib exit"
  local out
  out=$( { /usr/bin/time -f "%e %M" "$@" > /dev/null 2>"$dir/err"; echo "rc=$?" >> "$dir/err"; } 2>&1; true)
  local t rc
  t=$(grep -E '^[0-9.]+ [0-9]+$' "$dir/err" | tail -1)
  rc=$(grep -o 'rc=[0-9]*' "$dir/err" | tail -1)
  echo "$t $rc"
}
# Warm the page cache once so neither tool pays the first read.
cat "$dir/golden.h5" "$dir/actual.h5" > /dev/null
c=$(measure .build/release/certify diff "$dir/actual.h5" "$dir/golden.h5" --rtol 1e-10 --atol 0)
h=$(measure h5diff -p 1e-10 "$dir/golden.h5" "$dir/actual.h5" /case0/outputs/y /case0/outputs/y)
echo "certify diff: $c (seconds, peak RSS KiB, exit)"
echo "h5diff -p   : $h (seconds, peak RSS KiB, exit)"
ct=${c%% *}; ht=${h%% *}
/usr/bin/python3 -c "print(f'ratio certify/h5diff wall time: {float($ct)/float($ht):.2f}')"
