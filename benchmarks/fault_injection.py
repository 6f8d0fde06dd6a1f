r"""Fault injection: a tiny training run attacked N times; reports what survived.

  python benchmarks/fault_injection.py --trials 12 --seed 0

Each trial trains a tiny TUFA (`configs/tufa_demo.py` shrunk by overrides)
with `jaxlm train` in a subprocess and injects one fault:

  kill     SIGKILL at a random moment (also mid-save), then the same command
           again: the final parameters must equal, bitwise, those of an
           uninterrupted reference run;
  corrupt  bytes flipped in a random data file of the newest checkpoint,
           then the same command again: it must warn, set the checkpoint
           aside, resume from the previous one and finish;
  nan      the learning rate explodes at a random step: the run must stop
           with one `error:` line, and every checkpoint left must be finite
           and loadable;
  two      a second `jaxlm train` on the same workdir while the first runs:
           refused with one `error:` line naming the holder; the first
           finishes.

A trial counts as survived when nothing the run had saved is lost and the
outcome is the documented one. Prints one line per trial and a summary.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

STEPS = 16
TINY = ['--config.model.variant=Ti/16:depth=1', '--config.model.decoder_layers=1',
        '--config.model.decoder_mlp=32', '--config.model.head_hidden=16',
        '--config.data.image_size=32', '--config.data.num_anchors=8',
        '--config.data.mean_shape_samples=8', '--config.data.threads=1',
        '--config.train.batch_size=4', f'--config.train.steps={STEPS}',
        '--config.train.log_every=1', '--config.train.checkpoint_every=2',
        '--config.train.keep_checkpoints=3', '--config.optim.warmup_steps=0']


def jaxlm(workdir, *extra, wait=True):
  cmd = [sys.executable, '-m', 'jaxlm', 'train', '--config',
         'configs/tufa_demo.py', '--workdir', str(workdir), '--no-progress',
         *TINY, *extra]
  p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True)
  if not wait:
    return p
  out, err = p.communicate(timeout=900)
  return p.returncode, err


def final_params(workdir):
  from jaxlm import checkpoints  # pylint: disable=g-import-not-at-top
  run = checkpoints.load_run(workdir)
  return run.step, checkpoints.flatten(run.variables['params'])


def same(a, b):
  return a[0] == b[0] and set(a[1]) == set(b[1]) and all(
      np.array_equal(a[1][k], b[1][k]) for k in a[1])


def steps_of(workdir):
  d = Path(workdir) / 'checkpoints'
  return sorted(int(p.name) for p in d.glob('*') if p.name.isdigit())


def trial_kill(root, rng, reference):
  w = root / 'kill'
  p = jaxlm(w, wait=False)
  time.sleep(rng.uniform(8.0, 25.0))  # start-up, compile, steps, saves
  p.send_signal(signal.SIGKILL)
  p.wait()
  rc, err = jaxlm(w)
  return rc == 0 and same(final_params(w), reference), f'rc {rc}'


def trial_corrupt(root, rng, reference):
  del reference
  w = root / 'corrupt'
  rc, _ = jaxlm(w, f'--config.train.steps={STEPS // 2}')
  newest = w / 'checkpoints' / str(max(steps_of(w)))
  files = [f for f in (newest / 'state').rglob('*') if f.is_file()]
  f = rng.choice(files)
  data = bytearray(f.read_bytes())
  for _ in range(8):
    if data:
      data[rng.randrange(len(data))] ^= 0xFF
  f.write_bytes(bytes(data))
  rc, err = jaxlm(w)
  ok = rc == 0 and max(steps_of(w)) == STEPS
  return ok, f'{f.relative_to(w)}; rc {rc}; set aside: ' + str(
      [p.name for p in (w / 'checkpoints').glob('*.unreadable-*')])


def trial_nan(root, rng, reference):
  del reference
  w = root / 'nan'
  frac = rng.uniform(0.2, 0.8)
  rc, err = jaxlm(w, f'--config.optim.decay_at=({frac:.3f},)',
                  '--config.optim.decay_factor=1e30',
                  '--config.train.log_every=100')
  from jaxlm import checkpoints  # pylint: disable=g-import-not-at-top
  finite = True
  for s in steps_of(w):
    v = checkpoints.load_run(w / 'checkpoints' / str(s)).variables
    finite &= all(np.isfinite(x).all()
                  for x in checkpoints.flatten(v).values())
  last = err.strip().splitlines()[-1] if err.strip() else ''
  ok = rc == 2 and 'nothing non-finite was saved' in last and finite
  return ok, f'lr x1e30 at {frac:.0%}; rc {rc}; kept {steps_of(w)}'


def trial_two(root, rng, reference):
  w = root / 'two'
  first = jaxlm(w, wait=False)
  time.sleep(rng.uniform(3.0, 8.0))
  rc2, err2 = jaxlm(w)
  out, err = first.communicate(timeout=900)
  last = err2.strip().splitlines()[-1] if err2.strip() else ''
  ok = (rc2 == 2 and 'being trained by another process' in last and
        first.returncode == 0 and same(final_params(w), reference))
  return ok, f'second rc {rc2}; first rc {first.returncode}'


TRIALS = dict(kill=trial_kill, corrupt=trial_corrupt, nan=trial_nan,
              two=trial_two)


def main():
  p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  p.add_argument('--trials', type=int, default=8)
  p.add_argument('--seed', type=int, default=0)
  p.add_argument('--faults', nargs='+', default=list(TRIALS),
                 choices=list(TRIALS))
  a = p.parse_args()
  rng = random.Random(a.seed)
  os.environ.setdefault('JAXLM_NO_PROGRESS', '1')
  base = Path(tempfile.mkdtemp(prefix='jaxlm-faults-'))
  t0 = time.time()
  rc, err = jaxlm(base / 'reference')
  if rc:
    sys.exit(f'reference run failed: {err[-2000:]}')
  reference = final_params(base / 'reference')
  print(f'reference run: {STEPS} steps in {time.time() - t0:.0f}s',
        flush=True)
  survived = 0
  for i in range(a.trials):
    kind = a.faults[i % len(a.faults)]
    root = base / f'trial{i}'
    root.mkdir()
    t0 = time.time()
    ok, what = TRIALS[kind](root, rng, reference)
    survived += ok
    print(f'trial {i:2d} {kind:7s} {"survived" if ok else "LOST":8s} '
          f'{time.time() - t0:5.0f}s  {what}', flush=True)
    shutil.rmtree(root, ignore_errors=True)
  print(f'{survived}/{a.trials} faults survived with nothing lost')
  shutil.rmtree(base, ignore_errors=True)
  sys.exit(0 if survived == a.trials else 1)


if __name__ == '__main__':
  main()
