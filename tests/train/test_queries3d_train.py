"""The 3D-query family (paper 002) through the shared train / eval / predict
path: sparse and dense layouts in one batch, zero-shot from a query table,
σ per landmark in pixels."""

import json

import numpy as np
import pytest

from conftest import ROOT, _small_run
from jaxlm import checkpoints, cli
from jaxlm.config import load_config
from jaxlm.data import query_tables
from jaxlm.inference import Predictor, load_image
from jaxlm.train.loop import train

pytestmark = [pytest.mark.slow, pytest.mark.integration]


def tiny_queries3d_config(steps=12, image_size=32):
  c = load_config(str(ROOT / 'configs' / 'queries3d_demo.py'))
  c = _small_run(c, steps, image_size)
  c.model.variant = 'tiny:depths=1-1-1-1:dims=8-16-16-16'
  c.model.predictor_width = 32
  del c.data.train['syn68']
  for name in ('syn68', 'syn29'):
    del c.data.eval[name]
  del c.data.train['syn29']
  c.data.train.syn98.size = 8
  c.data.train.syndense.size = 8
  c.data.num_anchors = 128  # > 98: syn98 examples are padded
  c.train.checkpoint_every = steps
  c.optim.decay_at = ()
  return c


def test_train_eval_predict_with_3d_queries(tmp_path, capsys):
  c = tiny_queries3d_config()
  work = tmp_path / 'run'
  out = train(c, work, progress=False)
  assert out['step'] == 12
  lines = [json.loads(l) for l in
           (work / 'metrics.jsonl').read_text().splitlines()]
  assert all(np.isfinite(l['loss']) for l in lines)
  assert np.mean([l['loss'] for l in lines[-3:]]) < lines[0]['loss']

  run = checkpoints.load_run(work)
  assert run.datasets == [('syn98', 98), ('syndense', 2048)]
  table = np.asarray(run.variables['constants']['queries'])
  np.testing.assert_allclose(
      table, query_tables.queries_table(['syn98', 'syndense']), atol=1e-6)

  assert cli.main(['eval', '--workdir', str(work), '--no-progress']) == 0
  zs = json.loads((work / 'eval' / 'syn19_zero_shot.json').read_text())
  assert zs['zero_shot'] and np.isfinite(zs['nme'])
  np.testing.assert_allclose(
      np.load(work / 'eval' / 'prompts_syn19_zero_shot.npy'),
      query_tables.layout_queries('syn19'))

  face = tmp_path / 'face.png'
  assert cli.main(['synth', '--layout', 'syn98', '--num', '1', '--size',
                   '32', '--out', str(face), '--no-progress']) == 0
  # a layout never trained on, by name (its query table), and a file of
  # arbitrary canonical points
  for layout, n in (('cofw29', 29), ('syn98', 98)):
    pred = tmp_path / f'{layout}.json'
    assert cli.main(['predict', '--workdir', str(work), '--image', str(face),
                     '--crop', 'none', '--layout', layout, '--json',
                     str(pred), '--no-progress']) == 0
    result = json.loads(pred.read_text())
    assert result['num_points'] == n
    sigma = np.array(result['uncertainty'])
    assert sigma.shape == (n, 2)
    # σ in pixels: exp(log_var / 2) screen units, a screen unit being half
    # the 32 px crop (`--crop none`: the image is the crop)
    p = Predictor(work)
    out = p.model.apply(p.variables, load_image(face)[None],
                        p.prompts(layout))
    want = np.exp(np.asarray(out['log_var'])[0] / 2) * 32 / 2
    np.testing.assert_allclose(sigma, np.repeat(want[:, None], 2, 1),
                               rtol=2e-3, atol=2e-3)
  q = tmp_path / 'q.npy'
  np.save(q, np.random.default_rng(0).normal(size=(7, 3)).astype(np.float32))
  assert cli.main(['predict', '--workdir', str(work), '--image', str(face),
                   '--crop', 'none', '--layout', str(q), '--no-progress']) == 0
  # 2D prompts are one clear error
  np.save(q, np.full((7, 2), 0.5, np.float32))
  assert cli.main(['predict', '--workdir', str(work), '--image', str(face),
                   '--crop', 'none', '--layout', str(q),
                   '--no-progress']) == 2
  assert '(N, 3) points of the canonical 3D face' in capsys.readouterr().err
