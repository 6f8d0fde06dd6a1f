"""Direct regression (paper 003) through the shared train / eval / predict
path: the generic trainer, evaluator and predictor on the family's hooks."""

import json

import numpy as np
import pytest

from conftest import ROOT, _small_run
from jaxlm import checkpoints, cli
from jaxlm.config import load_config
from jaxlm.train.loop import train

pytestmark = [pytest.mark.slow, pytest.mark.integration]


def tiny_regression_config(steps=40, image_size=32):
  """The demo's greyscale ResNet-18 on a few syn68 faces, small crops."""
  c = load_config(str(ROOT / 'configs' / 'regression_demo.py'))
  c = _small_run(c, steps, image_size)
  c.data.train.syn68.size = 4  # a few faces, seen over and over
  c.train.checkpoint_every = steps
  c.optim.lr = 1e-3
  c.optim.decay_at = ()
  return c


def test_train_lowers_the_mse_then_eval_and_predict(tmp_path, capsys):
  c = tiny_regression_config()
  work = tmp_path / 'run'
  out = train(c, work, progress=False)
  assert out['step'] == 40
  lines = [json.loads(l) for l in
           (work / 'metrics.jsonl').read_text().splitlines()]
  mse = [l['mse'] for l in lines]
  assert all(l['loss'] == l['mse'] for l in lines)
  assert np.mean(mse[-5:]) < 0.5 * np.mean(mse[:3]), mse
  assert 'train_nme' in lines[-1]

  run = checkpoints.load_run(work)
  assert run.datasets == [('syn68', 68)]
  v = run.variables
  # the trainer filled the mean shape and trained the BatchNorm statistics
  mean_shape = np.asarray(v['constants']['mean_shape'])
  assert mean_shape.shape == (68, 2)
  assert 0 < mean_shape.min() and mean_shape.max() < 1
  assert np.ptp(mean_shape[:, 0]) > 0.3  # a face, not the zero init
  assert np.abs(v['batch_stats']['backbone']['bn1']['mean']).max() > 0

  assert cli.main(['eval', '--workdir', str(work), '--no-progress']) == 0
  report = (work / 'eval' / 'report.md').read_text()
  assert '| syn68 | syn68 | trained |' in report
  result = json.loads((work / 'eval' / 'syn68.json').read_text())
  assert result['count'] == 6 and not result['zero_shot']
  assert np.isfinite(result['nme']) and np.isfinite(result['mean_shape_nme'])

  face = tmp_path / 'face.png'
  assert cli.main(['synth', '--layout', 'syn68', '--num', '1', '--size',
                   '32', '--out', str(face), '--no-progress']) == 0
  pred = tmp_path / 'p.json'
  assert cli.main(['predict', '--workdir', str(work), '--image', str(face),
                   '--crop', 'none', '--json', str(pred),
                   '--no-progress']) == 0
  result = json.loads(pred.read_text())
  points = np.array(result['landmarks'])
  assert result['num_points'] == 68 and points.shape == (68, 2)
  assert np.all(np.isfinite(points)) and 'uncertainty' not in result
  assert np.all((points > -8) & (points < 40))  # near the 32 px image

  # a prompt file of another point count is one clear error (exit 2), as is
  # a zero-shot eval layout: the family predicts its one layout only
  p29 = tmp_path / 'p29.npy'
  np.save(p29, np.full((29, 2), 0.5, np.float32))
  assert cli.main(['predict', '--workdir', str(work), '--image', str(face),
                   '--crop', 'none', '--layout', str(p29),
                   '--no-progress']) == 2
  assert 'predicts the 68 points' in capsys.readouterr().err
  assert cli.main(['eval', '--workdir', str(work), '--no-progress',
                   '--config.data.eval.syn68.prompts=mean_shape',
                   '--config.data.eval.syn68.layout=syn29']) == 2
  assert 'data.eval.syn68 (zero-shot' in capsys.readouterr().err
