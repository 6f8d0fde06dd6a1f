"""The heatmap cascade (paper 000) through the shared train / eval / predict
path, with its encoder frozen: it learns, the encoder stays bit-identical,
and `predict --json` reports each landmark's heatmap maximum."""

import json

import jax
import numpy as np
import pytest

from conftest import ROOT, _small_run
from jaxlm import checkpoints, cli
from jaxlm.config import load_config
from jaxlm.train.loop import setup, train

pytestmark = [pytest.mark.slow, pytest.mark.integration]


def tiny_lensmaster_config(steps=30, image_size=64):
  c = load_config(str(ROOT / 'configs' / 'lensmaster_demo.py'))
  c.model.variant = 'Ti/16:depth=1:layerscale=1:registers=4:rope=100:eps=5'
  c.model.backbone_input = 128  # an 8 x 8 heatmap
  c.model.width = 32
  c.model.blocks_per_stage = 1
  c = _small_run(c, steps, image_size)
  c.data.train.syn98.size = 4  # a few faces, seen over and over
  c.train.checkpoint_every = steps
  c.optim.warmup_steps = 0
  c.optim.decay_at = ()
  return c


def test_frozen_encoder_cascade_trains_evaluates_and_predicts(tmp_path):
  c = tiny_lensmaster_config()
  assert tuple(c.train.frozen) == ('encoder',)
  work = tmp_path / 'run'
  out = train(c, work, progress=False)
  assert out['step'] == 30
  lines = [json.loads(l) for l in
           (work / 'metrics.jsonl').read_text().splitlines()]
  loss = [l['loss'] for l in lines]
  assert np.mean(loss[-5:]) < 0.7 * np.mean(loss[:3]), loss
  assert {'awing', 'smooth_l1', 'train_nme'} <= set(lines[-1])

  # the frozen encoder is the initial one, bit for bit; the rest trained
  exp = setup(c)
  table = np.zeros((98, 2), np.float32)
  init = jax.jit(exp.init_state(table))().params
  run = checkpoints.load_run(work)
  trained = run.variables['params']
  jax.tree_util.tree_map(np.testing.assert_array_equal, trained['encoder'],
                         jax.tree_util.tree_map(np.asarray, init['encoder']))
  diff = jax.tree_util.tree_map(lambda a, b: float(np.abs(a - b).max()),
                                trained['cascade'], init['cascade'])
  assert max(jax.tree_util.tree_leaves(diff)) > 0

  assert cli.main(['eval', '--workdir', str(work), '--no-progress']) == 0
  result = json.loads((work / 'eval' / 'syn98.json').read_text())
  assert result['count'] == 6 and np.isfinite(result['nme'])

  face = tmp_path / 'face.png'
  assert cli.main(['synth', '--layout', 'syn98', '--num', '1', '--size',
                   '64', '--out', str(face), '--no-progress']) == 0
  pred, overlay = tmp_path / 'p.json', tmp_path / 'p.png'
  assert cli.main(['predict', '--workdir', str(work), '--image', str(face),
                   '--crop', 'none', '--json', str(pred), '--out',
                   str(overlay), '--no-progress']) == 0
  result = json.loads(pred.read_text())
  assert np.array(result['landmarks']).shape == (98, 2)
  conf = np.array(result['heatmap_max'])
  assert conf.shape == (98,) and np.all((conf > 0) & (conf <= 1))
  assert overlay.stat().st_size > 0
