"""SLPT / DSLPT through the shared train / eval / predict path."""

import json

import jax
import numpy as np
import pytest

from jaxlm import cli
from jaxlm.errors import JaxlmError
from jaxlm import checkpoints
from jaxlm.train.loop import train

pytestmark = pytest.mark.slow


@pytest.mark.parametrize('name', ['slpt', 'dslpt'])
def test_loss_decreases_when_overfitting(tmp_path, tiny_slpt, name):
  """One face over and over: the loss falls well below its start, and the
  BatchNorm-free ViT backbone path keeps no batch_stats."""
  c = tiny_slpt(name, steps=120)
  c.data.train.syn29.size = 1
  c.data.eval = {}
  c.model.dropout = 0.0
  c.optim.lr = 1e-3
  c.train.checkpoint_every = 120
  train(c, tmp_path, progress=False)
  lines = [json.loads(l) for l in
           (tmp_path / 'metrics.jsonl').read_text().splitlines()]
  losses = [l['loss'] for l in lines]
  key = 'nme_stage3' if name == 'slpt' else 'nll_stage3'
  assert key in lines[-1]
  # the NLL can go negative: compare the fall with its start's magnitude
  assert np.mean(losses[-10:]) < np.mean(losses[:3]) - 0.4 * abs(
      np.mean(losses[:3]))


def test_batchnorm_stats_are_trained_checkpointed_and_resumed(tmp_path,
                                                               tiny_slpt):
  c = tiny_slpt('dslpt', steps=4)
  c.model.variant = 'resnet34'
  c.model.width = 32
  c.data.image_size = 32
  train(c, tmp_path / 'full', progress=False)
  train(c, tmp_path / 'part', progress=False, stop_at=2)
  train(c, tmp_path / 'part', progress=False)
  _, _, a, _ = checkpoints.load_run(tmp_path / 'full')
  _, _, b, _ = checkpoints.load_run(tmp_path / 'part')
  assert 'batch_stats' in a
  mean = a['batch_stats']['backbone']['bn1']['mean']
  assert np.abs(mean).max() > 0  # moved from its zero init
  for tree in ('params', 'batch_stats'):
    jax.tree_util.tree_map(lambda x, y: np.testing.assert_allclose(
        x, y, rtol=1e-5, atol=1e-6), a[tree], b[tree])


def test_anchor_masking_is_refused(tiny_slpt, tmp_path):
  c = tiny_slpt('slpt')
  c.data.num_anchors = 10
  with pytest.raises(JaxlmError, match='set it to 0'):
    train(c, tmp_path, progress=False)


@pytest.mark.integration
def test_dslpt_train_eval_predict_cli(tmp_path, tiny_slpt, capsys):
  from jaxlm.config import to_json
  c = tiny_slpt('dslpt', steps=3)
  cfg = tmp_path / 'cfg.py'
  cfg.write_text('import ml_collections, json\n'
                 f'def get_config():\n  return ml_collections.ConfigDict('
                 f'json.loads({to_json(c)!r}))\n')
  work = tmp_path / 'run'
  assert cli.main(['train', '--config', str(cfg), '--workdir', str(work),
                   '--eval', '--no-progress']) == 0
  report = (work / 'eval' / 'report.md').read_text()
  assert '| syn29 | syn29 | trained |' in report
  assert cli.main(['synth', '--layout', 'syn29', '--num', '1', '--size', '64',
                   '--out', str(tmp_path / 'face.png'), '--no-progress']) == 0
  out = tmp_path / 'p.json'
  assert cli.main(['predict', '--workdir', str(work), '--image',
                   str(tmp_path / 'face.png'), '--crop', 'none', '--json',
                   str(out), '--no-progress']) == 0
  result = json.loads(out.read_text())
  std = np.array(result['uncertainty'])
  assert std.shape == (29, 2) and np.all(std > 0)
  assert np.array(result['landmarks']).shape == (29, 2)
