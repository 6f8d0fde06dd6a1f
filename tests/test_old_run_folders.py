"""Run folders written before the family registry still load and predict.

`tests/fixtures/runs_v0/` was written by the code of commit fcdd19b (see its
make_v0_fixtures.py): a trained TUFA run (with an EMA), a converted-weights
TUFA run and a converted encoder. Today's reader must give exactly the
landmarks that code predicted from them, and the CLI must evaluate them.
"""

from pathlib import Path

import ml_collections
import numpy as np
import pytest

from jaxlm import checkpoints, cli
from jaxlm.errors import JaxlmError
from jaxlm.inference import Predictor
from jaxlm.train.loop import train

FIXTURES = Path(__file__).parent / 'fixtures' / 'runs_v0'
EXPECTED = np.load(FIXTURES / 'expected.npz')


@pytest.mark.parametrize('run', ['trained', 'converted_tufa'])
def test_predictions_are_those_of_the_old_code(run):
  p = Predictor(FIXTURES / run)
  for layout in ('syn29', 'syn68'):
    got = p.detect(EXPECTED['face'], p.prompts(layout), crop=False)
    np.testing.assert_allclose(got['landmarks'],
                               EXPECTED[f'{run}/{layout}'], atol=1e-4)


@pytest.mark.parametrize('run', ['trained', 'converted_tufa'])
def test_eval_runs_on_them(run, tmp_path, capsys):
  assert cli.main(['eval', '--checkpoint', str(FIXTURES / run), '--out',
                   str(tmp_path), '--no-progress']) == 0
  assert 'syn29' in capsys.readouterr().out
  assert (tmp_path / 'report.md').exists()


def test_old_encoder_folder_initialises_training(tmp_path):
  tree, meta = checkpoints.load_weights(FIXTURES / 'dino_encoder')
  np.testing.assert_allclose(
      [np.abs(x).sum() for x in __import__('jax').tree_util.tree_leaves(tree)],
      EXPECTED['dino_encoder/abs_sum'], rtol=1e-6)
  cfg = checkpoints.load_run(FIXTURES / 'trained').config
  cfg.train.steps, cfg.optim.lr = 1, 0.0
  cfg.init = ml_collections.ConfigDict(dict(
      encoder=str(FIXTURES / 'dino_encoder')))
  train(cfg, tmp_path / 'run', progress=False)
  got = checkpoints.load_run(tmp_path / 'run').variables['params']['encoder']
  got, want = checkpoints.flatten(got), checkpoints.flatten(tree)
  assert set(got) == set(want) and meta['kind'] == 'dino'
  for k in want:
    np.testing.assert_array_equal(got[k], want[k], err_msg=k)


def test_a_vit_backbone_of_slpt_takes_the_encoder(tmp_path):
  """The family says where its ViT lives (SLPT: backbone/vit), so
  `init.encoder` reaches it, not only TUFA's `encoder`."""
  from conftest import tiny_slpt_config
  c = tiny_slpt_config(steps=1, image_size=32)
  c.model.variant = 'vit:' + checkpoints.load_meta(
      FIXTURES / 'dino_encoder')['variant']
  c.optim.lr = 0.0
  c.init = ml_collections.ConfigDict(dict(
      encoder=str(FIXTURES / 'dino_encoder')))
  train(c, tmp_path / 'run', progress=False)
  got = checkpoints.load_run(tmp_path / 'run').variables['params']
  want = checkpoints.flatten(checkpoints.load_weights(
      FIXTURES / 'dino_encoder')[0])
  got = checkpoints.flatten(got['backbone']['vit'])
  assert set(got) == set(want)
  for k in want:
    np.testing.assert_array_equal(got[k], want[k], err_msg=k)
  c.model.variant = 'hrnet_lite'
  with pytest.raises(JaxlmError, match='has no encoder'):
    train(c, tmp_path / 'run2', progress=False)
