r"""Where a training step's time goes: per-op totals from a profiler trace.

  python benchmarks/profile_step.py --model dslpt --batch 8 --steps 2
  python benchmarks/profile_step.py --model tufa --variant S/16 --top 30
  python benchmarks/profile_step.py --config configs/slpt_demo.py:dslpt \
      --json /tmp/dslpt_profile.json

Compiles the same step `benchmarks/train_step.py` times (`StepBench`: the
jitted step `jaxlm train` runs, on random input), runs it once untimed, then
`--steps` times inside `jax.profiler.trace`. XLA records one trace event per
executed HLO instruction (on CPU one per thunk: a fusion, a convolution, a
dot, a copy...); each event is matched by name to the compiled program's
HLO, which says what the instruction is (its opcode; for a fusion, whether
it holds a convolution, a dot, a reduction, a gather/scatter or only
elementwise work), its output shape, and the source it came from (the
`op_name` metadata: the Flax module path, and `transpose(...)` for the
backward pass).

Printed per step: the step's wall time, the sum of the ops' times (it can
exceed the wall time when ops run concurrently, or fall short of it by the
time between ops), and the ops' time grouped by kind, by pass (forward,
backward, optimizer) and by model component (`--depth` levels of the Flax
module path), then the `--top` single instructions. Caveat (XLA:CPU, jax 0.10.2): a
plain `dot` thunk (Eigen's, not a YNNPACK fusion) may run asynchronously,
so its event can show little more than its launch while its arithmetic
overlaps, and slows, the ops after it (TUFA's weight-gradient products:
12 events of 2.4 GFLOP each summing to 6 ms). `--json` writes the
groups and every instruction's total. The trace itself stays in
`--trace-dir` (TensorBoard's profile plugin or Perfetto can open it), with
the compiled step's HLO (`step.hlo.txt`), where each instruction's name
leads to what it computes.
"""

from __future__ import annotations

import argparse
import collections
import glob
import gzip
import json
import os
import re
import sys
import tempfile
import time

import jax

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import train_step  # pylint: disable=g-import-not-at-top,wrong-import-position

# one HLO instruction: `[ROOT ]name = shape opcode(operands), ... metadata=...`
_INSTRUCTION = re.compile(
    r'^\s*(?:ROOT\s+)?%?(?P<name>[\w.\-]+)\s*=\s*(?P<shape>.+?)\s+'
    r'(?P<opcode>[\w\-]+)\((?P<rest>.*)$')
_COMPUTATION = re.compile(r'^\s*(?:ENTRY\s+)?(?P<name>%?[\w.\-]+)\s.*\{\s*$')
_CALLS = re.compile(r'calls=%?([\w.\-]+)')
_OP_NAME = re.compile(r'op_name="([^"]*)"')
# opcodes that name a fusion's kind, most telling first
_KINDS = (('convolution', 'convolution'), ('dot', 'dot'),
          ('custom-call', 'custom-call'), ('scatter', 'scatter'),
          ('gather', 'gather'), ('reduce-window', 'reduce-window'),
          ('reduce', 'reduce'), ('sort', 'sort'))
# trace events that are not one HLO instruction
_NOT_OPS = ('ThunkExecutor', 'PjitFunction', 'CommonPjRt', 'end: ',
            'ThreadpoolListener', '$')


def parse_hlo(text: str) -> dict:
  """name -> dict(opcode, shape, op_name, kind) of every instruction of the
  optimised HLO text; a fusion's kind is the most telling opcode of the
  computation it calls (elementwise when none)."""
  computations = collections.defaultdict(list)  # computation -> opcodes
  instructions, current = {}, None
  for line in text.splitlines():
    m = _COMPUTATION.match(line)
    if m and '=' not in line.split('{')[0]:
      current = m.group('name').lstrip('%')
      continue
    m = _INSTRUCTION.match(line)
    if not m:
      continue
    name = m.group('name').lstrip('%')
    calls = _CALLS.search(m.group('rest'))
    op_name = _OP_NAME.search(m.group('rest'))
    instructions[name] = dict(
        opcode=m.group('opcode'), shape=m.group('shape'),
        op_name=op_name.group(1) if op_name else '',
        calls=calls.group(1) if calls else None,
        # XLA:CPU hands some fusions to XNNPACK ('__ynn_fusion')
        library='ynn ' if '__ynn_fusion' in m.group('rest') else '')
    computations[current].append(m.group('opcode'))
  for info in instructions.values():
    kind = info['opcode']
    if kind == 'fusion' and info['calls']:
      inner = set(computations.get(info['calls'], ()))
      kind = next((label for op, label in _KINDS if op in inner),
                  'elementwise')
      kind = f'{info["library"]}fusion: {kind}'
    info['kind'] = kind
  return instructions


def module_path(op_name: str, depth: int) -> str:
  """The first `depth` Flax module names under the model in an HLO op_name,
  numbered repeats merged: 'jit(train_step)/transpose(jvp(TUFA))/encoder/
  blocks_3/fc1/dot_general' -> 'encoder/blocks_*' at depth 2; '(outside
  the model)' for the optimizer and the loss."""
  parts = [re.sub(r'^(?:[\w]+\()+', '', p).rstrip(')')
           for p in op_name.split('/')[1:]]
  root = next((i for i, p in enumerate(parts) if p[:1].isupper()), None)
  if root is None:
    return '(outside the model)'
  mods = [re.sub(r'_\d+$', '_*', p) for p in parts[root + 1:-1]]
  return '/'.join(mods[:depth]) or parts[root]


def which_pass(op_name: str) -> str:
  if 'transpose(' in op_name:
    return 'backward'
  if 'jvp(' in op_name or 'Model' in op_name or re.search(r'/[A-Z]', op_name):
    return 'forward'
  return 'optimizer and other'


def trace_events(trace_dir: str) -> list:
  paths = sorted(glob.glob(os.path.join(trace_dir, '**', '*.trace.json.gz'),
                           recursive=True))
  if not paths:
    raise SystemExit(f'no *.trace.json.gz under {trace_dir}: the profiler '
                     'wrote no Perfetto trace')
  with gzip.open(paths[-1]) as f:
    data = json.load(f)
  return data['traceEvents'] if isinstance(data, dict) else data


def table(title, totals, steps, wall, top=None):
  rows = sorted(totals.items(), key=lambda kv: -kv[1])[:top]
  print(f'\n{title}\n| | ms/step | % of step wall |\n|---|---|---|')
  for name, us in rows:
    ms = us / 1e3 / steps
    print(f'| {name} | {ms:.1f} | {100 * ms / 1e3 / wall:.1f} |')


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  p.add_argument('--model', default='tufa', choices=sorted(train_step.CONFIGS))
  p.add_argument('--config', default=None)
  p.add_argument('--variant', default=None)
  p.add_argument('--batch', type=int, default=8)
  p.add_argument('--prompts', type=int, default=98)
  p.add_argument('--image-size', type=int, default=256)
  p.add_argument('--dtype', default='float32',
                 choices=['float32', 'bfloat16'])
  p.add_argument('--remat', default='none')
  p.add_argument('--steps', type=int, default=2)
  p.add_argument('--depth', type=int, default=2,
                 help='module-path levels in the per-component table')
  p.add_argument('--top', type=int, default=25)
  p.add_argument('--trace-dir', default=None)
  p.add_argument('--json', default=None)
  a = p.parse_args(argv)
  print(f'jax {jax.__version__} on {jax.local_devices()[0].device_kind} '
        f'x{jax.local_device_count()}', flush=True)
  bench = train_step.StepBench(a.config or train_step.CONFIGS[a.model],
                               a.variant, a.dtype, a.image_size, a.prompts)
  t0 = time.perf_counter()
  compiled = bench.compile(a.batch, a.remat)
  print(f'compiled in {time.perf_counter() - t0:.0f} s', flush=True)
  trace_dir = a.trace_dir or tempfile.mkdtemp(prefix='jaxlm_profile_')
  os.makedirs(trace_dir, exist_ok=True)
  text = compiled.as_text()
  with open(os.path.join(trace_dir, 'step.hlo.txt'), 'w') as f:
    f.write(text)  # to read a fusion: grep its name, then its computation
  hlo = parse_hlo(text)
  data = bench.batch(a.batch)
  state, m = compiled(bench.state, data)
  jax.block_until_ready(m)
  walls = []
  with jax.profiler.trace(trace_dir, create_perfetto_trace=True):
    for _ in range(a.steps):
      t1 = time.perf_counter()
      state, m = compiled(state, data)
      jax.block_until_ready(m)
      walls.append(time.perf_counter() - t1)
  wall = sum(walls) / len(walls)
  per_op = collections.Counter()
  unmatched = collections.Counter()
  for e in trace_events(trace_dir):
    if e.get('ph') != 'X' or e['name'].startswith(_NOT_OPS):
      continue
    name = e['name']
    (per_op if name in hlo else unmatched)[name] += e.get('dur', 0.0)
  by_kind, by_pass, by_module = (collections.Counter() for _ in range(3))
  for name, us in per_op.items():
    info = hlo[name]
    by_kind[info['kind']] += us
    by_pass[which_pass(info['op_name'])] += us
    by_module[module_path(info['op_name'], a.depth)] += us
  ops_ms = sum(per_op.values()) / 1e3 / a.steps
  cfg = bench.config.model
  print(f'\n{cfg.name} {cfg.variant} {a.dtype} batch {a.batch} '
        f'{a.image_size}px: step {wall * 1e3:.0f} ms wall (mean of '
        f'{a.steps} traced steps), ops {ops_ms:.0f} ms summed over '
        f'{len(per_op)} instructions; not matched to the HLO: '
        f'{sum(unmatched.values()) / 1e3 / a.steps:.0f} ms/step '
        f'({", ".join(n for n, _ in unmatched.most_common(3))})')
  table('By kind', by_kind, a.steps, wall)
  table('By pass', by_pass, a.steps, wall)
  table(f'By component (module path, depth {a.depth})', by_module, a.steps,
        wall, a.top)
  print(f'\nTop {a.top} instructions\n| instruction | kind | shape | '
        'source | ms/step |\n|---|---|---|---|---|')
  for name, us in per_op.most_common(a.top):
    info = hlo[name]
    src = '/'.join(info['op_name'].split('/')[-3:])
    print(f'| {name} | {info["kind"]} | {info["shape"][:48]} | {src[:70]} '
          f'| {us / 1e3 / a.steps:.1f} |')
  print(f'\ntrace and step.hlo.txt: {trace_dir}')
  if a.json:
    with open(a.json, 'w') as f:
      json.dump(dict(
          model=cfg.name, variant=cfg.variant, batch=a.batch,
          dtype=a.dtype, step_s=wall, ops_ms=ops_ms,
          unmatched_ms=sum(unmatched.values()) / 1e3 / a.steps,
          by_kind={k: v / 1e3 / a.steps for k, v in by_kind.items()},
          by_pass={k: v / 1e3 / a.steps for k, v in by_pass.items()},
          by_module={k: v / 1e3 / a.steps for k, v in by_module.items()},
          ops={n: dict(ms=us / 1e3 / a.steps, **{
              k: hlo[n][k] for k in ('kind', 'shape', 'op_name')})
               for n, us in per_op.items()}), f, indent=1)


if __name__ == '__main__':
  main()
