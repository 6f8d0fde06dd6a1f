r"""bf16 mixed precision vs float32: the same short run twice, loss curves
side by side (any family: `model.dtype`; parameters stay float32).

  python benchmarks/mixed_precision.py --config configs/lensmaster_demo.py \
      --steps 200 --window 20 --control

Both runs start from the same initial parameters and see the same batches
(same seed); only the compute dtype differs. Every step's loss is logged;
the table gives each run's mean loss over windows of `--window` steps (one
step's loss is one batch's: too noisy to compare runs whose paths drift
apart), their relative difference, and each run's img/s and wall time.
`--control` adds a float32 run with `seed` + 1 (other initial parameters
and batches): bf16's curve is within tolerance where it stays as close to
float32's as that run does. Run folders go to a temporary directory unless
`--workdir` is given; finished runs found there are read, not retrained,
if their saved config is the one this call would train (an error names the
keys that differ otherwise).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from jaxlm import checkpoints
from jaxlm.config import (apply_overrides, describe_differences, differences,
                          load_config, parse_override_args)
from jaxlm.errors import JaxlmError
from jaxlm.train.loop import train


def run(config_spec, overrides, dtype, steps, workdir, seed_offset=0):
  """One run's logged training steps and its wall time (None: an earlier
  run of this config found finished in `workdir`, read again)."""
  c = load_config(config_spec)
  apply_overrides(c, overrides)
  c.model.dtype = dtype
  c.seed += seed_offset
  c.train.steps = steps
  c.train.checkpoint_every = steps
  c.train.log_every = 1
  metrics = Path(workdir) / 'metrics.jsonl'
  logged = _steps(metrics) if metrics.exists() else []
  if any(l['step'] == steps for l in logged):  # finished before
    _check_same_config(workdir, c)
    return logged, None
  t0 = time.time()
  train(c, workdir, progress=False)
  return _steps(metrics), time.time() - t0


def _check_same_config(workdir, config):
  """A finished run is read again only if it trained this very config."""
  saved, _ = checkpoints.read_run_metadata(workdir)
  changed = differences(saved, config)
  if changed:
    raise JaxlmError(
        f'{Path(workdir) / checkpoints.CONFIG_FILE}: the finished run there '
        f'trained another config (saved -> now): '
        f'{describe_differences(changed)}; use another --workdir')


def _steps(metrics):
  """The logged training steps (a torn last line, from a run killed while
  writing it, is left out)."""
  lines = []
  for line in metrics.read_text().splitlines():
    try:
      lines.append(json.loads(line))
    except ValueError:
      continue
  return [l for l in lines if 'loss' in l]  # training steps only


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  p.add_argument('--config', required=True)
  p.add_argument('--steps', type=int, default=200)
  p.add_argument('--window', type=int, default=10,
                 help='steps per row: the mean loss over them')
  p.add_argument('--control', action='store_true',
                 help='also a float32 run with seed + 1: the drift between '
                 'two float32 runs, to judge bf16\'s by')
  p.add_argument('--workdir', default=None,
                 help='parent folder of the runs (float32/, bfloat16/, '
                 'float32_seed1/); finished runs of the same config there '
                 'are read again instead of trained')
  a, rest = p.parse_known_args(argv)
  overrides = parse_override_args(rest)
  parent = Path(a.workdir or tempfile.mkdtemp(prefix='jaxlm-mp-'))
  runs = {'float32': ('float32', 0), 'bfloat16': ('bfloat16', 0)}
  if a.control:
    runs['float32_seed1'] = ('float32', 1)
  curves = {k: run(a.config, overrides, dtype, a.steps, parent / k, offset)
            for k, (dtype, offset) in runs.items()}
  print(f'## {a.config}: {a.steps} steps, float32 vs bfloat16 compute\n')
  print(f'mean loss over windows of {a.window} steps' + (
      '; the control is float32 with `seed` + 1 (other initial parameters '
      'and batches): how far two float32 runs drift apart' if a.control
      else '') + '\n')
  f32 = curves['float32'][0]
  others = [k for k in curves if k != 'float32']
  print('| steps | loss float32 | ' + ' | '.join(
      f'loss {k} | rel. diff' for k in others) + ' |')
  print('|---|---|' + '---|---|' * len(others))
  worst = dict.fromkeys(others, 0.0)
  for i in range(0, a.steps, a.window):
    x = np.mean([l['loss'] for l in f32[i:i + a.window]])
    cells = []
    for k in others:
      y = np.mean([l['loss'] for l in curves[k][0][i:i + a.window]])
      worst[k] = max(worst[k], abs(y - x) / abs(x))
      cells.append(f'{y:.4f} | {(y - x) / abs(x):+.1%}')
    last = min(i + a.window, len(f32))
    print(f'| {f32[i]["step"]}-{f32[last - 1]["step"]} | {x:.4f} | ' +
          ' | '.join(cells) + ' |')
  print('\nlargest |rel. diff|: ' + ', '.join(
      f'{k} {v:.1%}' for k, v in worst.items()))
  ips = lambda ls: np.mean([l.get('img_per_s', 0) for l in ls[1:]])
  print('; '.join(
      f'{k}: ' + (f'{wall:.0f} s wall, ' if wall else 'read again, ') +
      f'{ips(ls):.1f} img/s' for k, (ls, wall) in curves.items()) +
        f' (runs in {parent})')


if __name__ == '__main__':
  try:
    main()
  except JaxlmError as e:  # one line, no traceback
    sys.exit(f'mixed_precision.py: {e}')
