"""SIGKILL at a random step, restart: same parameters, same examples.

A `jaxlm train` process is killed with SIGKILL (no chance to save) once it
has logged a random step; the restart resumes from the last checkpoint with
the saved grain iterator state. The final parameters must equal those of an
uninterrupted run bitwise, and the faces trained on at every step (the last
record of each step in examples.jsonl) must be the uninterrupted run's: none
skipped, none seen twice.
"""

import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest

from conftest import TINY_TUFA_ARGS
from jaxlm import checkpoints

ROOT = Path(__file__).resolve().parents[2]
STEPS = 10
ARGS = ['--config', 'configs/tufa_demo.py', '--no-progress', *TINY_TUFA_ARGS,
        '--config.data.image_size=64', '--config.data.mean_shape_samples=8',
        '--config.train.batch_size=4', f'--config.train.steps={STEPS}',
        '--config.train.log_every=1', '--config.train.checkpoint_every=3',
        '--config.optim.warmup_steps=0', '--config.train.log_example_ids=True']


def _train(workdir, **kw):
  return subprocess.Popen([sys.executable, '-m', 'jaxlm', 'train',
                           '--workdir', str(workdir), *ARGS], cwd=ROOT,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          text=True, **kw)


def _steps_logged(workdir):
  f = workdir / 'metrics.jsonl'
  return len(f.read_text().splitlines()) if f.exists() else 0


def _examples(workdir):
  per_step = {}
  for line in (workdir / 'examples.jsonl').read_text().splitlines():
    rec = json.loads(line)
    per_step[rec['step']] = rec['ids']  # a replayed step: the last counts
  return [per_step[s] for s in sorted(per_step)]


@pytest.mark.slow
@pytest.mark.integration
def test_sigkill_then_resume_equals_an_uninterrupted_run(tmp_path):
  ref = tmp_path / 'ref'
  p = _train(ref)
  assert p.wait(timeout=600) == 0, p.stderr.read()[-2000:]

  kill_after = random.Random().randint(2, STEPS - 2)
  run = tmp_path / 'run'
  p = _train(run)
  deadline = time.time() + 600
  while _steps_logged(run) < kill_after and p.poll() is None:
    assert time.time() < deadline
    time.sleep(0.05)
  p.send_signal(signal.SIGKILL)
  p.wait()
  assert _steps_logged(run) < STEPS, 'finished before it could be killed'
  p = _train(run)
  assert p.wait(timeout=600) == 0, p.stderr.read()[-2000:]

  a = checkpoints.load_run(ref)
  b = checkpoints.load_run(run)
  assert a[3] == b[3] == STEPS
  jax.tree_util.tree_map(np.testing.assert_array_equal, a[2], b[2])
  seen_ref, seen_run = _examples(ref), _examples(run)
  assert len(seen_ref) == STEPS
  assert seen_run == seen_ref, f'killed after step {kill_after}'
