#!/usr/bin/python3
"""Certify's own fuzzer (issue 11, section 6).

Mutates goldens (byte flips, truncation, dtype / shape / name changes), params (huge, negative, NaN,
overflowing), WAV and IDX headers, and command-line arguments, and runs `certify` on each mutant.
Every invocation runs in its own session under a memory limit (RLIMIT_AS) and a time limit, and must:

  - exit with 0, 1 or 2 (as the README's exit codes imply), never by a signal;
  - finish within the time limit (no hang);
  - leave any output file it was asked to write untouched when it fails;
  - leave no process behind (nothing else in its session once it exits).

Seeded: the same --seed and --count run the same invocations. Findings are written (with the mutant and
the command line) under --findings. The last line is a one-line summary; the exit status is 1 on any
finding, 0 otherwise.

    /usr/bin/python3 tools/fuzz.py --count 200 --seed 1      # the CI subset (make fuzz-ci, under 3 minutes)
    /usr/bin/python3 tools/fuzz.py --count 2000 --seed 7     # the full campaign (make fuzz)
"""

import argparse
import hashlib
import os
import random
import resource
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time

import h5py
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HUGE = [10**12, 2**62, 2**63 - 1, -1, -(2**62), 0, 10**9, 2**31, 2**32 + 3, 9 * 10**15, 10**16]
WEIRD = [float('nan'), float('inf'), -float('inf'), 1e300, -1e300, 0.5, -0.0, 1e-300, 2.0**63]


def goldens():
    """Small goldens with their protocol ids (big ones make mutations slow)."""
    out = []
    for paper in ('core', 'iadg', 'lava', 'input_gradients'):
        d = os.path.join(ROOT, 'golden', paper)
        if not os.path.isdir(d):
            continue
        for name in sorted(os.listdir(d)):
            p = os.path.join(d, name)
            if not name.endswith('.h5') or os.path.getsize(p) > 1_500_000:
                continue
            try:
                with h5py.File(p, 'r') as f:
                    pid = f.attrs.get('protocol')
                pid = pid.decode() if isinstance(pid, bytes) else pid
            except Exception:
                continue
            if pid and pid != 'lava.official_models':
                out.append((p, str(pid)))
    return out


# MARK: - mutations of HDF5 files

def datasets(f):
    names = []
    f.visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) else None)
    return names


def mutate_bytes(rng, src, dst):
    data = bytearray(open(src, 'rb').read())
    for _ in range(rng.randint(1, 24)):
        i = rng.randrange(len(data))
        data[i] = rng.randrange(256)
    open(dst, 'wb').write(bytes(data))
    return 'byte flips'


def mutate_truncate(rng, src, dst):
    data = open(src, 'rb').read()
    n = rng.choice([0, 7, 8, 512, rng.randrange(len(data)), len(data) - 1])
    open(dst, 'wb').write(data[:max(0, n)])
    return f'truncated to {n} bytes'


def mutate_structure(rng, src, dst):
    shutil.copy(src, dst)
    with h5py.File(dst, 'a') as f:
        names = datasets(f)
        if not names:
            return 'no datasets'
        name = rng.choice(names)
        v = f[name][()]
        kind = rng.choice(['dtype', 'shape', 'rename', 'delete', 'empty', 'string', 'bool', 'cycle', 'dangling', 'huge'])
        if kind in ('dtype', 'shape', 'empty', 'string', 'bool', 'huge'):
            del f[name]
        if kind == 'dtype':
            dt = rng.choice([np.float32, np.int64, np.int8, np.uint8, np.int32])
            with np.errstate(all='ignore'):
                f[name] = np.asarray(v).astype(dt)
        elif kind == 'shape':
            a = np.asarray(v).ravel()
            f[name] = rng.choice([a, a[:max(0, a.size - 1)], a.reshape(1, -1), np.concatenate([a, a])])
        elif kind == 'rename':
            f.move(name, name + rng.choice(['_x', 'é', '/deeper']))
        elif kind == 'delete':
            del f[name]
        elif kind == 'empty':
            f.create_dataset(name, shape=(0,) * rng.randint(1, 3), dtype='f8')
        elif kind == 'string':
            f[name] = 'not a number'
        elif kind == 'bool':
            f[name] = np.asarray(v).astype(bool) if np.asarray(v).dtype.kind in 'fiub' else True
        elif kind == 'cycle':
            f['loop' + str(rng.randrange(100))] = f['/']
        elif kind == 'dangling':
            f['nowhere' + str(rng.randrange(100))] = h5py.SoftLink('/no/such/' + name)
        elif kind == 'huge':
            f.create_dataset(name, shape=(rng.choice([10**9, 10**12, 2**40]),), dtype='f8', chunks=(1 << 16,))
        return f'{kind} of /{name}'


def mutate_param(rng, src, dst):
    shutil.copy(src, dst)
    with h5py.File(dst, 'a') as f:
        params = [n for n in datasets(f) if '/params/' in n or '/inputs/' in n]
        if not params:
            return 'no params'
        name = rng.choice(params)
        old = np.asarray(f[name][()])
        if old.dtype.kind not in 'fiub':
            return 'string param'
        del f[name]
        if rng.random() < 0.6:
            value = rng.choice(HUGE)
            arr = np.full(old.shape, value, dtype=np.int64) if abs(value) < 2**63 else np.full(old.shape, float(value))
        else:
            arr = np.full(old.shape, rng.choice(WEIRD), dtype=np.float64)
        if old.dtype.kind in 'iub' and arr.dtype.kind == 'f' and np.all(np.abs(arr) < 2.0**62) and rng.random() < 0.5:
            arr = arr.astype(np.int64)
        f[name] = arr
        return f'/{name} = {arr.ravel()[:3].tolist()}'


# MARK: - WAV and IDX headers

def wav_bytes(rng):
    rate = rng.choice([16000, 8000, 44100, 1, 3, 4294967291, 2**31, 0, 65535, 7])
    channels = rng.choice([1, 2, 0, 65535, 3])
    bits = rng.choice([16, 8, 24, 32, 64, 0, 12])
    code = rng.choice([1, 3, 0xFFFE, 6])
    n = rng.choice([0, 1, 100, 2000, 16000])
    width = max(1, bits // 8)
    data = bytes(rng.randrange(256) for _ in range(min(n * width * max(1, min(channels, 4)), 64000)))
    block = (channels * width) % 65536
    declared = rng.choice([len(data), len(data) + rng.randrange(1, 10**6), 2**32 - 1, 0])
    fmt = struct.pack('<HHIIHH', code, channels % 65536, rate % 2**32, (rate * block) % 2**32, block, bits)
    if code == 0xFFFE:
        fmt += struct.pack('<HHI', 22, bits, 0) + struct.pack('<H', rng.choice([1, 3])) + bytes(14)
    body = b'fmt ' + struct.pack('<I', len(fmt)) + fmt + b'data' + struct.pack('<I', declared) + data
    head = rng.choice([b'RIFF', b'RIFF', b'RF64', b'RIFX'])
    return head + struct.pack('<I', (4 + len(body)) % 2**32) + b'WAVE' + body


def idx_dir(rng, base):
    d = tempfile.mkdtemp(dir=base)
    n = rng.choice([4, 0, 1])
    rows, cols = rng.choice([(28, 28), (0, 0), (2, 3), (1, 28)])

    def write(path, dims, payload_len, typ=0x08):
        hdr = bytes([0, 0, typ, len(dims)]) + b''.join(struct.pack('>I', x % 2**32) for x in dims)
        open(path, 'wb').write(hdr + bytes(rng.randrange(256) for _ in range(payload_len)))

    dims = [n, rows, cols]
    if rng.random() < 0.5:
        dims = [rng.choice([0xFFFFFFFF, 8_000_000, n, 2**31]), rng.choice([rows, 0xFFFFFFFF, 32]), rng.choice([cols, 32])]
    payload = min(n * rows * cols, 200_000) if rng.random() < 0.8 else rng.randrange(64)
    for split in ('train', 't10k'):
        write(os.path.join(d, f'{split}-images-idx3-ubyte'), dims, payload, rng.choice([0x08, 0x08, 0x0D, 0x07]))
        write(os.path.join(d, f'{split}-labels-idx1-ubyte'), [rng.choice([n, 0xFFFFFFFF])], n)
    return d


# MARK: - command lines

def cli_args(rng, gold, pid):
    junk = rng.choice(['-1', 'nan', 'inf', '1e309', '', ' ', 'x' * rng.choice([10, 5000]), '--', '-', '0', '1e-400', '２'])
    return rng.choice([
        ['diff', gold, gold, rng.choice(['--rtol', '--atol']), junk],
        ['diff', gold, gold, '--path', junk],
        ['diff', gold, gold, '--protocol', junk],
        ['show', junk], ['run', junk], ['list', junk],
        ['eval', junk, '--input', gold, '--output', '@OUT'],
        ['eval', pid, '--input', gold, '--output', '@OUT', '--max-memory', junk],
        ['blockmnist', 'export', '--source', junk, '--output', '@OUT'],
        ['audit', '--theory', '--experiment', rng.choice(['d=1e8,width=1e8', 'd=2,width=1,epochs=1,n_train=1,n_test=1', 'd=' + junk])],
        ['audit', '--method', 'gradient', '--learner-hidden', rng.choice(['100000000', '0', junk]), '--source', '/nonexistent'],
        ['lava', 'classify', junk], ['lava', 'classify', gold, '--tau-ada', junk],
        [junk], ['diff', junk, gold], ['_validate', junk],
    ])


# MARK: - running

def session_processes(sid):
    found = []
    for p in os.listdir('/proc'):
        if not p.isdigit():
            continue
        try:
            stat = open(f'/proc/{p}/stat').read()
            fields = stat[stat.rindex(')') + 2:].split()
            if int(fields[3]) == sid and fields[0] != 'Z':
                found.append(int(p))
        except (OSError, ValueError, IndexError):
            pass
    return found


def run(binary, args, time_limit, mem_limit, env):
    def limits():
        resource.setrlimit(resource.RLIMIT_AS, (mem_limit, mem_limit))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

    start = time.time()
    p = subprocess.Popen([binary] + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=ROOT,
                         preexec_fn=limits, start_new_session=True)
    hung = False
    try:
        out, err = p.communicate(timeout=time_limit)
    except subprocess.TimeoutExpired:
        hung = True
        os.killpg(p.pid, signal.SIGKILL)
        out, err = p.communicate()
    wall = time.time() - start
    # Anything still in the invocation's session was left behind (give a dying child a moment).
    left = []
    for _ in range(20):
        left = session_processes(p.pid)
        if not left:
            break
        time.sleep(0.05)
    for q in left:
        try:
            os.kill(q, signal.SIGKILL)
        except OSError:
            pass
    return p.returncode, out.decode(errors='replace'), err.decode(errors='replace'), hung, left, wall


def digest(path):
    return hashlib.sha256(open(path, 'rb').read()).hexdigest() if os.path.exists(path) else None


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--count', type=int, default=200)
    ap.add_argument('--seed', type=int, default=1)
    ap.add_argument('--binary', default=os.path.join(ROOT, '.build/release/certify'))
    ap.add_argument('--time-limit', type=float, default=60, help='seconds per invocation')
    ap.add_argument('--memory-limit', type=float, default=6, help='GiB of address space per invocation (RLIMIT_AS)')
    ap.add_argument('--budget', default='1G', help="certify's own --max-memory (CERTIFY_MAX_MEMORY)")
    ap.add_argument('--findings', default=os.path.join(ROOT, '.certify/fuzz-findings'))
    ap.add_argument('--verbose', action='store_true')
    a = ap.parse_args()
    if not os.access(a.binary, os.X_OK):
        print(f'fuzz: {a.binary} is missing; build it with `swift build -c release --product certify`', file=sys.stderr)
        return 2
    rng = random.Random(a.seed)
    corpus = goldens()
    env = dict(os.environ, SWIFT_BACKTRACE='enable=no', CERTIFY_MAX_MEMORY=a.budget, CERTIFY_VALIDATE_SECONDS=str(a.time_limit / 2))
    work = tempfile.mkdtemp(prefix='certify-fuzz-')
    counts = dict(invocations=0, crashes=0, hangs=0, wrong=0, changed=0, left=0)
    findings = []
    started = time.time()
    try:
        for i in range(a.count):
            gold, pid = rng.choice(corpus)
            case = os.path.join(work, f'case{i}')
            os.makedirs(case)
            mutant = os.path.join(case, 'mutant.h5')
            out = os.path.join(case, 'out.h5')
            kind = rng.choices(['bytes', 'truncate', 'structure', 'param', 'wav', 'idx', 'cli'], [2, 1, 3, 4, 1.5, 1, 1.5])[0]
            try:
                if kind == 'bytes':
                    what = mutate_bytes(rng, gold, mutant)
                elif kind == 'truncate':
                    what = mutate_truncate(rng, gold, mutant)
                elif kind == 'structure':
                    what = mutate_structure(rng, gold, mutant)
                elif kind == 'param':
                    what = mutate_param(rng, gold, mutant)
                else:
                    what = kind
            except Exception as e:   # a mutation h5py itself cannot make: skip it
                what = f'(mutation failed: {e})'
                shutil.copy(gold, mutant)
            if kind == 'param' and rng.random() < 0.85:
                args = ['eval', pid, '--input', mutant, '--output', out]
            elif kind in ('bytes', 'truncate', 'structure', 'param'):
                args = rng.choice([
                    ['eval', pid, '--input', mutant, '--output', out],
                    ['diff', mutant, gold], ['diff', gold, mutant], ['diff', mutant, mutant, '--path', '/'],
                ])
            elif kind == 'wav':
                wav = os.path.join(case, 'x.wav')
                open(wav, 'wb').write(wav_bytes(rng))
                args = ['lava', 'classify', wav]
            elif kind == 'idx':
                args = ['blockmnist', 'export', '--source', idx_dir(rng, case), '--output', out]
            else:
                args = [out if x == '@OUT' else x for x in cli_args(rng, gold, pid)]
            # An output that exists before the run must be unchanged after a failure.
            if out in args:
                open(out, 'wb').write(b'sentinel: must survive a failed run\n')
            before = digest(out)
            rc, so, se, hung, left, wall = run(a.binary, args, a.time_limit, int(a.memory_limit * 2**30), env)
            counts['invocations'] += 1
            problems = []
            if hung:
                counts['hangs'] += 1
                problems.append(f'hang (> {a.time_limit} s)')
            elif rc < 0:
                counts['crashes'] += 1
                problems.append(f'signal {-rc}')
            elif rc not in (0, 1, 2):
                counts['wrong'] += 1
                problems.append(f'exit code {rc}')
            if rc != 0 and not hung and out in args and digest(out) != before:
                counts['changed'] += 1
                problems.append('output changed on failure')
            if left:
                counts['left'] += 1
                problems.append(f'processes left behind: {left}')
            if a.verbose:
                print(f'[{i}] {kind}: {what} -> {rc} ({wall:.1f} s) {" ".join(args)[:160]}', file=sys.stderr)
            if problems:
                os.makedirs(a.findings, exist_ok=True)
                keep = os.path.join(a.findings, f'seed{a.seed}-case{i}')
                shutil.rmtree(keep, ignore_errors=True)
                shutil.copytree(case, keep)
                with open(os.path.join(keep, 'README'), 'w') as fh:
                    fh.write(f'{"; ".join(problems)}\nmutation: {kind}: {what}\ncommand: certify {" ".join(args)}\n'
                             f'stderr:\n{se[-3000:]}\n')
                findings.append(f'case {i}: {"; ".join(problems)}: certify {" ".join(args)[:200]} ({kind}: {what})')
                print('FINDING ' + findings[-1], file=sys.stderr)
            shutil.rmtree(case, ignore_errors=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f'fuzz: {counts["invocations"]} invocations, {counts["crashes"]} crashes, {counts["hangs"]} hangs, '
          f'{counts["wrong"]} wrong exit codes, {counts["changed"]} outputs changed, {counts["left"]} processes left behind '
          f'(seed {a.seed}, {time.time() - started:.0f} s)')
    return 1 if findings else 0


if __name__ == '__main__':
    sys.exit(main())
