"""Nothing a user has is lost: NaN runs, two trainers, unwritable or failing
checkpoint folders, failed first runs, corrupt checkpoints (issue 12).

Each test fails on the code before these fixes (see the note per test).
"""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from jaxlm import checkpoints
from jaxlm.errors import JaxlmError
from jaxlm.inference import Predictor
from jaxlm.train.loop import train

pytestmark = pytest.mark.slow


def _steps(workdir):
  return sorted(int(p.name) for p in (Path(workdir) / 'checkpoints').glob('*')
                if p.name.isdigit())


def test_a_nan_run_keeps_its_last_finite_checkpoint(tmp_path, tiny):
  # Before: the loss was checked every log_every steps only, NaN states were
  # saved and keep-N rotated the good checkpoints away.
  c = tiny(steps=6)
  c.train.checkpoint_every, c.train.keep_checkpoints = 1, 2
  c.train.log_every = 100
  # the learning rate explodes after step 3 (x1e30): a NaN soon after
  c.optim.decay_at, c.optim.decay_factor = (0.5,), 1e30
  c.optim.grad_clip = 1.0
  with pytest.raises(JaxlmError, match='became') as e:
    train(c, tmp_path, progress=False)
  assert 'nothing non-finite was saved' in str(e.value)
  assert 'set optim.grad_clip' not in str(e.value)  # it is set already
  steps = _steps(tmp_path)
  assert steps and max(steps) <= 4
  for s in steps:
    v = checkpoints.load_run(tmp_path / 'checkpoints' / str(s)).variables
    assert all(np.isfinite(x).all() for x in checkpoints.flatten(v).values())
  # a new session resumes from the finite checkpoint (and stops again)
  with pytest.raises(JaxlmError, match='became'):
    train(c, tmp_path, progress=False)
  assert _steps(tmp_path) == steps


def test_a_second_trainer_is_refused_and_a_dead_ones_lock_is_not(tmp_path,
                                                                 tiny):
  # Before: no lock; two trainers mixed one run's config with the other's
  # checkpoints.
  holder = subprocess.Popen(
      [sys.executable, '-c',
       'import sys, time; from jaxlm.checkpoints import WorkdirLock; '
       'WorkdirLock(sys.argv[1]).acquire(); print("held", flush=True); '
       'time.sleep(120)', str(tmp_path)], stdout=subprocess.PIPE, text=True)
  try:
    assert holder.stdout.readline().strip() == 'held'
    with pytest.raises(JaxlmError, match=f'another process \\(pid '
                       f'{holder.pid} on '):
      train(tiny(steps=1), tmp_path, progress=False)
    assert not (tmp_path / checkpoints.CONFIG_FILE).exists()
  finally:
    holder.kill()
    holder.wait()
  # The holder died without releasing anything: its lock file stays, but
  # it no longer holds the lock.
  assert (tmp_path / '.lock').read_text().startswith(f'pid {holder.pid}')
  train(tiny(steps=1), tmp_path, progress=False)
  assert _steps(tmp_path) == [1]


def test_an_unwritable_workdir_fails_at_start(tmp_path, tiny):
  blocker = tmp_path / 'file'
  blocker.write_text('not a folder')
  with pytest.raises(JaxlmError, match='is not writable'):
    train(tiny(steps=1), blocker / 'run', progress=False)


def test_a_failed_save_stops_training_at_once(tmp_path, tiny, monkeypatch):
  # Before: training went on without checkpoints, then stalled.
  real = checkpoints.Checkpointer.save
  calls = []

  def save(self, step, tree, data_state=None, metrics=None):
    calls.append(step)
    if len(calls) == 2:
      raise OSError(28, 'No space left on device')
    return real(self, step, tree, data_state, metrics)

  monkeypatch.setattr(checkpoints.Checkpointer, 'save', save)
  c = tiny(steps=8)
  with pytest.raises(JaxlmError, match='saving checkpoint 4 .* failed: .*No '
                     'space left on device'):
    train(c, tmp_path, progress=False)
  assert calls == [2, 4] and _steps(tmp_path) == [2]


def test_a_failed_first_run_does_not_block_its_workdir(tmp_path, tiny):
  # Before: config.json was written first; the corrected command was then
  # refused as "a different model config".
  c = tiny(steps=1)
  c.model.variant = 'Q/99'
  with pytest.raises(JaxlmError, match='model.variant|Q/99'):
    train(c, tmp_path, progress=False)
  assert not (tmp_path / checkpoints.CONFIG_FILE).exists()
  train(tiny(steps=1), tmp_path, progress=False)
  # The refusals name the keys that differ, saved -> now (before: the
  # training datasets as two lists; orbax's tree dump for a new state tree).
  c = tiny(steps=2)
  c.model.decoder_layers = 3
  del c.data.train['syn29']
  with pytest.raises(JaxlmError, match=r'saved -> now: model.decoder_layers: '
                     r'2 -> 3; data.train.syn29 \(points\): 29 -> \(absent\); '
                     r'use a new --workdir$'):
    train(c, tmp_path, progress=False)
  c = tiny(steps=2)
  c.train.ema_decay = 0.9  # another state tree: no checkpoint restores
  with pytest.raises(JaxlmError, match=r'config keys changed since the run '
                     r'was saved \(saved -> now\): train.ema_decay: 0.0 -> 0.9; '
                     r'train.steps: 1 -> 2; resume with'):
    train(c, tmp_path, progress=False)


def test_metrics_hold_each_step_once_after_a_resume(tmp_path, tiny):
  c = tiny(steps=4)
  train(c, tmp_path, progress=False, stop_at=2)
  path = tmp_path / 'metrics.jsonl'
  # what a session killed after its step-2 checkpoint had logged besides
  path.write_text(path.read_text() + '{"step": 3, "loss": 1.0}\n{"st')
  train(c, tmp_path, progress=False)
  import json
  steps = [json.loads(l)['step'] for l in path.read_text().splitlines()]
  assert steps == [1, 2, 3, 4]


def _corrupt_newest(workdir):
  """Flips bytes in the middle of the largest data file of the newest
  checkpoint: orbax restores such a file without noticing."""
  newest = Path(workdir) / 'checkpoints' / str(max(_steps(workdir)))
  files = sorted((p for p in (newest / 'state').rglob('*')
                  if p.is_file() and p.parent.name == 'd'),
                 key=lambda p: p.stat().st_size)
  data = bytearray(files[-1].read_bytes())
  for i in range(len(data) // 2, len(data) // 2 + 8):
    data[i] ^= 0xFF
  files[-1].write_bytes(bytes(data))
  return newest


def test_a_corrupt_checkpoint_is_detected_everywhere(tmp_path, tiny, caplog):
  # Before: corrupted data files restored silently (the run then went NaN).
  c = tiny(steps=4)
  train(c, tmp_path, progress=False)
  bad = _corrupt_newest(tmp_path)
  with pytest.raises(JaxlmError, match='changed since they were saved'):
    checkpoints.load_run(bad)
  p = Predictor(tmp_path)  # eval / predict take the newest readable one
  assert p.step == 2
  assert 'cannot be read' in caplog.text
  c.train.steps = 6
  train(c, tmp_path, progress=False)  # resumes from 2, sets 4 aside
  assert _steps(tmp_path)[-1] == 6
  assert list((tmp_path / 'checkpoints').glob('4.unreadable-*'))


def test_resuming_past_a_broken_checkpoint_prints_a_few_lines(tmp_path):
  # Before: ~700-1,000 lines of "Event loop is closed" tracebacks from the
  # reads a failed restore left in flight, around the one warning.
  tiny = ['--config.model.variant=Ti/16:depth=1',
          '--config.model.decoder_layers=1', '--config.model.decoder_mlp=32',
          '--config.model.head_hidden=16', '--config.data.image_size=32',
          '--config.data.num_anchors=8', '--config.data.mean_shape_samples=8',
          '--config.train.batch_size=4', '--config.train.checkpoint_every=2']

  def run(steps):
    return subprocess.run(
        [sys.executable, '-m', 'jaxlm', 'train', '--config',
         'configs/tufa_demo.py', '--workdir', str(tmp_path), '--no-progress',
         *tiny, f'--config.train.steps={steps}'], capture_output=True,
        text=True, timeout=600)

  assert run(4).returncode == 0
  (tmp_path / 'checkpoints' / '4' / 'state' / 'manifest.ocdbt').unlink()
  r = run(6)
  assert r.returncode == 0, r.stderr[-3000:]
  lines = [l for l in r.stderr.splitlines()
           if not l.startswith('WARNING: All log messages before absl')]
  assert any('resuming from step 2' in l for l in lines), lines
  assert len(lines) <= 8, '\n'.join(lines[:40])
