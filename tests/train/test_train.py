"""The training loop: learning, checkpoints, automatic resume."""

import json

import jax
import numpy as np
import pytest

from jaxlm.errors import JaxlmError
from jaxlm import checkpoints
from jaxlm.train.loop import train

pytestmark = pytest.mark.slow


def _params(workdir):
  _, _, variables, step = checkpoints.load_run(workdir)
  return variables['params'], step


def test_resume_continues_exactly(tmp_path, tiny):
  """6 steps in one go == stopped after 3, then resumed (same data)."""
  full = tmp_path / 'full'
  train(tiny(steps=6), full, progress=False)
  part = tmp_path / 'part'
  train(tiny(steps=6), part, progress=False, stop_at=3)
  assert checkpoints.Checkpointer(part).latest_step() == 3
  train(tiny(steps=6), part, progress=False)  # resumes from step 3
  a, sa = _params(full)
  b, sb = _params(part)
  assert sa == sb == 6
  jax.tree_util.tree_map(lambda x, y: np.testing.assert_allclose(
      x, y, rtol=1e-5, atol=1e-6), a, b)
  lines = [json.loads(l) for l in (part / 'metrics.jsonl').read_text().splitlines()]
  assert [l['step'] for l in lines] == [1, 2, 3, 4, 5, 6]


def test_loss_decreases_when_overfitting(tmp_path, tiny):
  """One face seen over and over: the loss must fall well below its start
  (an untrained model regresses every anchor to about the crop centre)."""
  c = tiny(steps=200)
  c.data.train = {'syn29': c.data.train.syn29}
  c.data.train.syn29.size = 1
  c.data.eval = {}
  c.optim.lr = 1e-3
  c.train.checkpoint_every = 200
  train(c, tmp_path, progress=False)
  losses = [json.loads(l)['loss'] for l in
            (tmp_path / 'metrics.jsonl').read_text().splitlines()]
  assert np.mean(losses[-10:]) < 0.6 * np.mean(losses[:3])


def test_half_written_checkpoint_is_not_the_latest(tmp_path, tiny):
  train(tiny(steps=2), tmp_path, progress=False)
  # What orbax leaves behind when a save is killed midway.
  junk = tmp_path / 'checkpoints' / '4.orbax-checkpoint-tmp-123'
  (junk / 'state').mkdir(parents=True)
  (junk / 'state' / 'garbage').write_text('x')
  assert checkpoints.Checkpointer(tmp_path).latest_step() == 2
  assert _params(tmp_path)[1] == 2


def test_other_model_in_workdir_is_an_error(tmp_path, tiny):
  train(tiny(steps=2), tmp_path, progress=False)
  c = tiny(steps=2)
  c.model.decoder_layers = 3
  with pytest.raises(JaxlmError, match=r'cannot resume; saved -> now: '
                     r'model\.decoder_layers: 2 -> 3'):
    train(c, tmp_path, progress=False)


def test_checkpoint_mismatch_names_parameters(tmp_path, tiny):
  from jaxlm.inference import Predictor
  train(tiny(steps=2), tmp_path, progress=False)
  cfg = json.loads((tmp_path / 'config.json').read_text())
  cfg['model']['decoder_mlp'] = 96
  (tmp_path / 'config.json').write_text(json.dumps(cfg))
  with pytest.raises(JaxlmError, match='linear1/kernel'):
    Predictor(tmp_path)


def test_sigterm_saves_and_stops(tmp_path, tiny):
  """A preempted job (SIGTERM) checkpoints the step it is at and returns."""
  import os
  import signal
  import threading
  c = tiny(steps=10_000)
  c.train.checkpoint_every = 10_000
  timer = threading.Timer(5.0, os.kill, (os.getpid(), signal.SIGTERM))
  timer.start()
  try:
    out = train(c, tmp_path, progress=False)
  finally:
    timer.cancel()
  assert out['stopped'] and 0 < out['step'] < 10_000
  assert checkpoints.Checkpointer(tmp_path).latest_step() == out['step']


def test_corrupted_newest_checkpoint_falls_back_to_the_previous(
    tmp_path, tiny, caplog):
  """A damaged newest checkpoint is skipped (warning naming it); resuming
  from the previous one still ends where an uninterrupted run ends."""
  full = tmp_path / 'full'
  train(tiny(steps=6), full, progress=False)
  part = tmp_path / 'part'
  train(tiny(steps=6), part, progress=False, stop_at=4)  # checkpoints 2, 4
  damaged = part / 'checkpoints' / '4' / 'state'
  for f in damaged.rglob('*'):
    if f.is_file():
      f.write_bytes(b'\0' * 7)
  with caplog.at_level('WARNING', logger='jaxlm'):
    train(tiny(steps=6), part, progress=False)
  assert any('checkpoints/4 cannot be restored' in r.getMessage()
             for r in caplog.records)
  assert (part / 'checkpoints' / '4.unreadable-0').is_dir()  # kept
  a, _ = _params(full)
  b, step = _params(part)
  assert step == 6
  jax.tree_util.tree_map(lambda x, y: np.testing.assert_allclose(
      x, y, rtol=1e-5, atol=1e-6), a, b)
