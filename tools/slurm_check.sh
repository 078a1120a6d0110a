#!/usr/bin/env bash
# make slurm-check: a real single-node Slurm on localhost runs a small `certify audit` as a plan of
# units (prepare job → job array → dependent merge job); the merged report, JSON and SVG must equal
# the single-machine run byte for byte. Then one array task is cancelled midway (scancel), the missing
# units are resubmitted, and the merge must still be identical.
#
# Installs Debian's slurm-wlm and munge when missing. Everything runs in a temporary folder (munged
# with a generated key, slurmctld and slurmd with a minimal configuration without cgroups) and is
# stopped at the end, whatever happens. When Slurm cannot start, this fails with the daemons' logs.
# CERTIFY=path chooses the binary (default .build/release/certify); KEEP=1 keeps the folder;
# SLURM_CHECK_EPOCHS=n (default 10) makes each unit's retraining longer, for timing the array.

set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
CERTIFY=${CERTIFY:-$ROOT/.build/release/certify}
CERTIFY=$(readlink -f "$CERTIFY")
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-1700000000}   # reports carry this date and 0 s of wall time
STEP_START=$(date +%s.%N)

step() { printf '== slurm-check [%6.1fs] %s\n' "$(echo "$(date +%s.%N) - $STEP_START" | bc)" "$*"; }
fail() { echo "slurm-check: FAILED: $*"; exit 1; }

[ -x "$CERTIFY" ] || fail "no certify binary at $CERTIFY (make build)"

# --- 1. packages -------------------------------------------------------------------------------
missing=""
for p in slurm-wlm munge; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  step "installing:$missing"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing > /dev/null
else
  step "slurm-wlm and munge present ($(slurmd -V))"
fi

# --- 2. the cluster, in a temporary folder, always stopped ---------------------------------------
T=$(mktemp -d /tmp/certify-slurm.XXXXXX)
chmod 700 "$T"
mkdir -p "$T/munge" "$T/state" "$T/spool" "$T/log" "$T/work"
OK=0
stop_daemons() {
  for d in slurmd slurmctld munged; do
    f="$T/$d.pid"
    [ -f "$f" ] || continue
    pid=$(cat "$f")
    if kill -0 "$pid" 2>/dev/null; then
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
      kill -9 "$pid" 2>/dev/null || true
    fi
  done
}
cleanup() {
  rc=$?
  set +e
  step "stopping slurmd, slurmctld, munged"
  if [ -f "$T/slurmctld.pid" ] && [ -n "$(squeue -h -o %i 2>/dev/null)" ]; then
    scancel --full $(squeue -h -o %A 2>/dev/null | sort -u) 2>/dev/null   # this temporary cluster's jobs only
    for _ in $(seq 20); do [ -z "$(squeue -h -o %i 2>/dev/null)" ] && break; sleep 0.5; done
  fi
  stop_daemons
  if [ "$OK" != 1 ]; then
    for l in "$T"/log/*.log; do [ -f "$l" ] && { echo "--- $l (last 40 lines)"; tail -40 "$l"; }; done
  fi
  if [ "${KEEP:-0}" = 1 ]; then echo "kept $T"; else rm -rf "$T"; fi
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

step "munged with a generated key"
dd if=/dev/urandom of="$T/munge/munge.key" bs=1024 count=1 status=none
chmod 400 "$T/munge/munge.key"
SOCK=$T/munge/munge.socket
munged --force --key-file="$T/munge/munge.key" --socket="$SOCK" --pid-file="$T/munged.pid" \
  --log-file="$T/log/munged.log" --seed-file="$T/munge/seed" || fail "munged did not start"
munge -n -S "$SOCK" | unmunge -S "$SOCK" > /dev/null || fail "munge round trip failed"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
CTLD_PORT=$(free_port); SLURMD_PORT=$(free_port)
while [ "$SLURMD_PORT" = "$CTLD_PORT" ]; do SLURMD_PORT=$(free_port); done
MEM=$(slurmd -C | grep -o 'RealMemory=[0-9]*' | cut -d= -f2)
CPUS=$(nproc); [ "$CPUS" -gt 2 ] && CPUS=2
export SLURM_CONF=$T/slurm.conf
cat > "$SLURM_CONF" <<EOF
ClusterName=certify
SlurmctldHost=localhost(127.0.0.1)
SlurmUser=$(id -un)
SlurmdUser=$(id -un)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$SOCK
StateSaveLocation=$T/state
SlurmdSpoolDir=$T/spool
SlurmctldPidFile=$T/slurmctld.pid
SlurmdPidFile=$T/slurmd.pid
SlurmctldLogFile=$T/log/slurmctld.log
SlurmdLogFile=$T/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
SlurmdParameters=config_overrides
ReturnToService=2
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SwitchType=switch/none
MinJobAge=3600
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$MEM State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF
step "slurmctld (port $CTLD_PORT) and slurmd (port $SLURMD_PORT, CPUs=$CPUS, RealMemory=$MEM)"
slurmctld -i -f "$SLURM_CONF" || fail "slurmctld did not start"
slurmd -N localhost -f "$SLURM_CONF" || fail "slurmd did not start"
for i in $(seq 60); do
  state=$(sinfo -h -N -o %t 2>/dev/null | head -1 || true)
  [ "$state" = idle ] && break
  sleep 1
done
[ "$state" = idle ] || fail "the node is not idle after 60 s (state '$state')"
step "cluster up: $(sinfo -h -o '%P %a %D %t %c')"

# --- 3. data and the single-machine run --------------------------------------------------------
python3 - "$T/work/src" <<'EOF'
# A small MNIST-format source: the first 3000 training and 600 test images of Debian's Fashion-MNIST.
import gzip, os, sys
out = sys.argv[1]; os.makedirs(out)
src = '/usr/share/datasets/fashion-mnist/'
for split, n in [('train', 3000), ('t10k', 600)]:
    for kind, hdr, per in [('images', 16, 784), ('labels', 8, 1)]:
        name = f'{split}-{kind}-idx{3 if kind == "images" else 1}-ubyte.gz'
        d = gzip.open(src + name).read()
        h = bytearray(d[:hdr]); h[4:8] = n.to_bytes(4, 'big')
        with open(os.path.join(out, name), 'wb') as f, gzip.GzipFile(fileobj=f, mode='wb', mtime=0) as g:
            g.write(bytes(h) + d[hdr:hdr + n * per])
EOF
ARGS=(--method gradient --source ../src --ks 0.1,0.5 --seeds 2 --learner-epochs "${SLURM_CHECK_EPOCHS:-10}" --learner-hidden 64,64 --model-epochs 2 --jobs 2
      --json out.json --svg out.svg)
mkdir -p "$T/work/single" "$T/work/array" "$T/work/preempt"
step "single-machine run: certify audit ${ARGS[*]}"
cd "$T/work/single"
t0=$(date +%s.%N)
"$CERTIFY" audit "${ARGS[@]}" > table.txt 2> audit.log || { cat audit.log; fail "certify audit failed"; }
SINGLE=$(echo "$(date +%s.%N) - $t0" | bc)
step "single-machine run: $(printf %.1f "$SINGLE") s wall"

# Waits until none of the given jobs is pending or running.
wait_jobs() {
  local deadline=$(( $(date +%s) + ${WAIT_LIMIT:-900} ))
  while [ -n "$(squeue -h -j "$1" -o %i 2>/dev/null)" ]; do
    [ "$(date +%s)" -lt "$deadline" ] || { squeue; fail "jobs $1 still running after ${WAIT_LIMIT:-900} s"; }
    sleep 0.5
  done
}
job_state() { scontrol show job "$1" 2>/dev/null | grep -o 'JobState=[A-Z_]*' | head -1 | cut -d= -f2; }
same() {   # same FILE_A FILE_B: byte for byte
  cmp "$1" "$2" > /dev/null || { diff <(head -c 4000 "$1") <(head -c 4000 "$2") | head -20; fail "$2 differs from $1"; }
}
compare_with_single() {   # compare_with_single DIR MERGE_JOB
  local d=$1
  [ -f "$d/out.json" ] || fail "$d/out.json was not written by the merge job"
  same "$T/work/single/out.json" "$d/out.json"
  same "$T/work/single/out.svg" "$d/out.svg"
  local mout=$(ls "$d"/plan.units/slurm-merge-*.out | tail -1)
  same "$T/work/single/table.txt" "$mout"
  step "identical to the single-machine run: out.json ($(wc -c < "$d/out.json") bytes), out.svg ($(wc -c < "$d/out.svg") bytes), the table ($(wc -l < "$mout") lines)"
}
submit() {   # submit PLAN [slurm options]: prints "prepare array merge" job ids
  local line
  line=$("$CERTIFY" slurm "$@" --submit | tail -1)
  echo "$line" >&2
  echo "$line" | sed -n 's/.*prepare \([0-9]*\), array \([0-9]*\), merge \([0-9]*\).*/\1 \2 \3/p'
}

# --- 4. plan → 2-way job array → merge --------------------------------------------------------
cd "$T/work/array"
"$CERTIFY" plan audit "${ARGS[@]}" -o plan.json
UNITS=$(python3 -c 'import json; print(len(json.load(open("plan.json"))["units"]))')
step "plan: $UNITS units; submitting prepare → array (--max-parallel 2) → merge"
t0=$(date +%s.%N)
read -r PREP ARR MERGE < <(submit plan.json --max-parallel 2 --cpus 1)
[ -n "$MERGE" ] || fail "certify slurm --submit printed no job ids"
wait_jobs "$PREP,$ARR,$MERGE"
ARRAY=$(echo "$(date +%s.%N) - $t0" | bc)
for j in "$PREP" "$MERGE"; do [ "$(job_state "$j")" = COMPLETED ] || { cat plan.units/slurm-*; fail "job $j ended $(job_state "$j")"; }; done
step "array done: prepare $PREP, array $ARR ($UNITS tasks), merge $MERGE completed in $(printf %.1f "$ARRAY") s wall"
"$CERTIFY" status plan.json | sed 's/^/   /'
compare_with_single "$T/work/array"

# --- 5. preemption: cancel one array task midway, resubmit the missing units -------------------
cd "$T/work/preempt"
"$CERTIFY" plan audit "${ARGS[@]}" -o plan.json
step "preemption: submitting the same plan one task at a time (--max-parallel 1)"
read -r PREP ARR MERGE < <(submit plan.json --max-parallel 1 --cpus 1)
# A unit takes about a second, and a cancel needs a moment to reach the task: when a unit finishes
# before its cancel lands (its file is written and the task ends COMPLETED), that is Slurm's race, not
# Certify's; the next running unit is cancelled instead, until one is stopped midway.
victim=""
tried=" "
deadline=$(( $(date +%s) + 600 ))
while [ -z "$victim" ]; do
  [ "$(date +%s)" -lt "$deadline" ] || fail "no running unit to cancel"
  [ -n "$(squeue -h -j "$ARR" -o %i 2>/dev/null)" ] || fail "the array finished before a task could be cancelled midway (tried units:$tried)"
  for l in plan.units/unit-*.lock; do
    [ -f "$l" ] || continue
    i=$((10#$(basename "$l" .lock | sed 's/unit-//')))
    [ "$i" -ge 1 ] || continue                      # let at least one unit finish first
    case "$tried" in *" $i "*) continue ;; esac
    tried="$tried$i "
    scancel "${ARR}_$i"
    for _ in $(seq 120); do [ -n "$(squeue -h -j "${ARR}_$i" -t R,CG,PD -o %i 2>/dev/null)" ] || break; sleep 0.25; done
    if [ -f "plan.units/unit-$(printf %05d "$i").json" ]; then
      step "unit $i finished before its cancel landed; cancelling the next running unit"
      continue
    fi
    victim=$i
    break
  done
  sleep 0.1
done
step "cancelled array task ${ARR}_$victim while it ran unit $victim"
wait_jobs "$ARR,$MERGE"
[ ! -f "plan.units/unit-$(printf %05d "$victim").json" ] || fail "unit $victim was written although its task was cancelled"
[ ! -f out.json ] || fail "the merge ran although a unit was cancelled"
step "merge job $MERGE: $(job_state "$MERGE") (its dependency failed); no report written"
set +e; "$CERTIFY" merge plan.json > merge.out 2> merge.err; rc=$?; set -e
[ "$rc" = 2 ] || fail "certify merge with a unit missing: exit $rc (expected 2)"
step "certify merge now: exit $rc: $(head -c 300 merge.err)"
"$CERTIFY" status plan.json | sed 's/^/   /'
step "resubmitting the missing units (certify slurm --missing)"
read -r PREP2 ARR2 MERGE2 < <(submit plan.json --missing --max-parallel 2 --cpus 1)
wait_jobs "$PREP2,$ARR2,$MERGE2"
[ "$(job_state "$MERGE2")" = COMPLETED ] || { cat plan.units/slurm-*; fail "merge job $MERGE2 ended $(job_state "$MERGE2")"; }
compare_with_single "$T/work/preempt"

OK=1
step "PASSED: single machine $(printf %.1f "$SINGLE") s vs 2-way job array $(printf %.1f "$ARRAY") s (same $UNITS-unit plan, wall time incl. Slurm scheduling)"
