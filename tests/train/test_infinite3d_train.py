"""Infinite 3D landmarks (paper 001) through the shared train / eval /
predict path, on loosely framed synthetic faces: S, the 3D head and D train
end to end; `predict --json` reports the RoI, head pose, camera and 3D
landmarks."""

import json

import numpy as np
import pytest

from conftest import ROOT, _small_run
from jaxlm import checkpoints, cli
from jaxlm.config import load_config
from jaxlm.data import query_tables
from jaxlm.data.synthetic import SyntheticFaces
from jaxlm.inference import Predictor
from jaxlm.train.loop import train

pytestmark = [pytest.mark.slow, pytest.mark.integration]


def tiny_infinite3d_config(steps=8, image_size=48):
  c = load_config(str(ROOT / 'configs' / 'infinite3d_demo.py'))
  c = _small_run(c, steps, image_size)
  c.model.variant = 'tiny:depths=1-1-1-1:dims=8-16-16-16'
  c.model.predictor_width = 32
  c.model.crop_size = 32
  c.model.stn_size = 32
  del c.data.train['syn68']
  for name in ('syn68', 'syn98', 'syn19_zero_shot'):
    del c.data.eval[name]
  c.data.train.syn98.size = 8
  c.data.train.syn29.size = 8
  c.data.num_anchors = 32
  c.train.checkpoint_every = steps
  c.optim.decay_at = ()
  return c


def test_train_eval_predict_without_a_face_detector(tmp_path):
  c = tiny_infinite3d_config()
  assert c.data.train.syn98.loose_framing
  work = tmp_path / 'run'
  out = train(c, work, progress=False)
  assert out['step'] == 8
  lines = [json.loads(l) for l in
           (work / 'metrics.jsonl').read_text().splitlines()]
  assert all(np.isfinite(l['loss']) for l in lines)
  assert {'offset_rms', 'stn_scale', 'roi_outside', 'roi_missed'} <= set(
      lines[-1])  # the demo's RoI term
  run = checkpoints.load_run(work)
  assert run.datasets == [('syn29', 29), ('syn98', 98)]
  # semantic tables: the layouts' points without their conventions
  np.testing.assert_allclose(
      np.asarray(run.variables['constants']['queries']),
      query_tables.queries_table(['syn29', 'syn98'], semantic=True),
      atol=1e-6)
  assert np.abs(query_tables.queries_table(['syn29']) - query_tables.
                queries_table(['syn29'], semantic=True)).max() > 1e-3
  # S, the pose head and D were trained (their heads start at zero)
  params = run.variables['params']
  for path in (('spatial_transformer', 'head', 'kernel'),
               ('pose_camera', 'out', 'kernel'),
               ('query_deformer', 'out', 'kernel')):
    p = params
    for k in path:
      p = p[k]
    assert np.abs(np.asarray(p)).max() > 0, path

  assert cli.main(['eval', '--workdir', str(work), '--no-progress']) == 0
  res = json.loads((work / 'eval' / 'syn29.json').read_text())
  assert np.isfinite(res['nme'])

  face = tmp_path / 'face.png'
  assert cli.main(['synth', '--layout', 'syn98', '--num', '1', '--size',
                   '48', '--out', str(face), '--no-progress']) == 0
  pred, overlay = tmp_path / 'p.json', tmp_path / 'p.png'
  assert cli.main(['predict', '--workdir', str(work), '--image', str(face),
                   '--crop', 'none', '--layout', 'cofw29', '--json',
                   str(pred), '--out', str(overlay), '--no-progress']) == 0
  result = json.loads(pred.read_text())
  assert result['num_points'] == 29
  assert np.array(result['roi']).shape == (4, 2)
  assert set(result['head_pose']) == {'yaw', 'pitch', 'roll'}
  assert np.array(result['landmarks3d']).shape == (29, 3)
  assert result['camera']['focal'] > 0
  assert overlay.exists()

  # a video's frames: one frame with independent pixel noise, tracked with
  # and without the One-Euro filter
  frames = SyntheticFaces('syn98', 1, seed=9, image_size=48,
                          loose_framing=True).static_copies(0, 6)['images']
  p = Predictor(work)
  raw = p.track(frames, p.prompts('syn98'), crop=False)
  smooth = p.track(frames, p.prompts('syn98'), crop=False,
                   smooth=dict(rate=30.0, min_cutoff=0.5, beta=0.0))
  assert raw.shape == smooth.shape == (6, 98, 2)
  np.testing.assert_allclose(smooth[0], raw[0], atol=1e-4)
  step = lambda x: np.abs(np.diff(x, axis=0)).mean()
  assert 0 < step(smooth) < 0.5 * step(raw)
