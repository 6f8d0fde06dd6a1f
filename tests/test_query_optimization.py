"""Query optimisation (paper 002 §4.2) on a tiny random 3D-query model.

The model is untrained but perturbed (random weights everywhere, the
zero-initialised output layer included), so l(q) is a smooth, non-constant
map of the query: a target that *is* the prediction of a known query has an
exact solution the optimiser must reach. Also: clicks in image pixels
through a crop, the dense-sample start, one error for 2D-prompt families,
`jaxlm query` -> .npy -> `jaxlm predict --layout`, and `render_pose`.
"""

from __future__ import annotations

import json
import types

import cv2
import jax
import numpy as np
import pytest

from conftest import ROOT
from jaxlm import checkpoints, cli, models
from jaxlm import config as config_lib
from jaxlm import query_optimization as qo
from jaxlm.data import crop as crop_lib
from jaxlm.data import query_tables
from jaxlm.data.synthetic import SyntheticFaces, canonical
from jaxlm.errors import JaxlmError
from jaxlm.inference import Predictor

SIZE = 32
# two known queries (canonical 3D, off the dense grid) and a start away
# from them
Q0 = np.array([[0.2, 0.1, 0.9], [-0.3, 0.4, 0.8]], np.float32)
OFFSET = np.array([0.25, -0.2, 0.1], np.float32)


def random_variables(model, size, image, seed=0):
  """Variables of `model` filled with random values (no init compile):
  weights ~ N(0, 1 / fan_in) (x3 in the query encoder, x0.3 in the output
  layer), LayerNorm scales 1, biases small; the output bias centres the
  predictions of C's dense sample on `image` in the crop."""
  rng = np.random.default_rng(seed)

  def fill(path, x):
    name = jax.tree_util.keystr(path)
    if x.ndim >= 2:
      s = 0.3 if "'out'" in name else 3.0 if 'query_encoder' in name else 1.0
      return rng.normal(0, s / np.sqrt(np.prod(x.shape[:-1])),
                        x.shape).astype(x.dtype)
    if 'scale' in name:
      return np.ones(x.shape, x.dtype)
    s = 0.0 if "'out'" in name else 0.1
    return rng.normal(0, s, x.shape).astype(x.dtype)

  v = jax.tree_util.tree_map_with_path(
      fill, models.abstract_variables(model, size))
  v['constants']['queries'] = query_tables.queries_table(['syn98'])
  v['constants']['mean_shape'] = np.full((98, 2), 0.5, np.float32)
  mu = jax.jit(model.apply)(v, image[None], qo.candidate_queries(0.1))[
      'landmarks']
  v['params']['head']['out']['bias'][:2] = 1.0 - 2 * np.asarray(mu).mean(
      axis=(0, 1))  # screen units: the mean prediction at the centre
  return v


@pytest.fixture(scope='module')
def image():
  return np.random.default_rng(1).integers(0, 256, (SIZE, SIZE, 3),
                                           dtype=np.uint8)


@pytest.fixture(scope='module')
def run(tmp_path_factory, image):
  """A run folder (step 0) of a tiny random queries3d model, 32 px."""
  c = config_lib.load_config(str(ROOT / 'configs' / 'queries3d_demo.py'))
  c.data.image_size = SIZE
  c.model.variant = 'tiny:depths=1-1-1-1:dims=8-16-16-16'
  c.model.predictor_width = 32
  for name in ('syn68', 'syn29', 'syndense'):
    del c.data.train[name]
  datasets = [('syn98', 98)]
  model = models.build(c.model, datasets)
  dst = tmp_path_factory.mktemp('q3d') / 'run'
  checkpoints.write_run(dst, random_variables(model, SIZE, image), datasets,
                        config_lib.to_json(c), {})
  return dst


@pytest.fixture(scope='module')
def predictor(run):
  return Predictor(run)


@pytest.fixture(scope='module')
def optimizer(predictor):
  return qo.QueryOptimizer(predictor, steps=150)


def predict_px(predictor, image, queries):
  """(K, 2) crop pixels of queries on one model input."""
  return predictor.detect(image, queries, crop=False)['landmarks']


def test_recovers_the_target_of_a_known_query(predictor, optimizer, image):
  targets = predict_px(predictor, image, Q0)
  fit = optimizer(image, targets, start=Q0 + OFFSET)
  start_err = np.sqrt(fit.loss[0]) * SIZE  # crop pixels before step 1
  assert np.all(start_err > 0.2) and start_err.max() > 2  # visibly off
  assert fit.queries.shape == (2, 3) and fit.queries.dtype == np.float32
  assert fit.loss.shape == (150, 2)
  np.testing.assert_array_less(fit.residual, 1e-2)  # pixels
  # the reported point is the model's prediction of the found query
  np.testing.assert_allclose(predict_px(predictor, image, fit.queries),
                             fit.points, atol=1e-4)
  curve = fit.loss.sum(1)
  assert curve[-1] < 1e-4 * curve[0]
  assert np.all(curve[100:] <= curve[:50].min())


def test_dense_sample_start_is_the_nearest_prediction(predictor, optimizer,
                                                       image):
  cands = qo.candidate_queries()
  assert cands.shape[1] == 3 and len(cands) > 4000
  pick = [100, 2500]
  targets = predict_px(predictor, image, cands)[pick]
  fit = optimizer(image, targets)
  # the start predicts its target exactly (that candidate or one that
  # predicts the same point); the fit stays there
  np.testing.assert_array_less(np.sqrt(fit.loss[0]) * SIZE, 1e-3)
  np.testing.assert_array_less(fit.residual, 1e-2)
  # and for targets between candidates the fit improves on the start
  targets = predict_px(predictor, image, Q0)
  fit = optimizer(image, targets)
  assert np.all(fit.residual <= np.sqrt(fit.loss[0]) * SIZE + 1e-6)
  np.testing.assert_array_less(fit.residual, 1e-2)


def test_image_clicks_go_through_the_crop(predictor, optimizer, image):
  # a 64 x 48 "photo" whose face box crops to the model input
  box = (8.0, 4.0, 40.0, 36.0)
  m = crop_lib.square_crop_affine(box, SIZE)
  photo = cv2.warpAffine(image, crop_lib.invert_affine(m), (64, 48),
                         flags=cv2.INTER_LINEAR)
  x, m2, _ = qo.crop_image(photo, SIZE, box)
  np.testing.assert_allclose(m2, m)
  targets = predict_px(predictor, x, Q0)
  clicks = crop_lib.apply_affine(crop_lib.invert_affine(m), targets)
  fit = optimizer.fit_image(photo, clicks, box=box)
  np.testing.assert_allclose(fit.targets, targets, atol=1e-9)
  np.testing.assert_allclose(fit.image_points(), clicks, atol=0.02)
  np.testing.assert_array_less(fit.image_residual(), 0.02)


def test_refuses_families_without_3d_queries(predictor):
  tufa = types.SimpleNamespace(model=None, variables=None, size=SIZE,
                               family=models.get('tufa'))
  with pytest.raises(JaxlmError, match='3D-query model'):
    qo.QueryOptimizer(tufa)
  with pytest.raises(JaxlmError, match='outside the model input'):
    qo.QueryOptimizer(predictor, steps=2)(
        np.zeros((SIZE, SIZE, 3), np.uint8), [[SIZE + 5.0, 3.0]])
  with pytest.raises(JaxlmError, match='--point'):
    qo.parse_point('3;4')


def test_cli_query_then_predict_tracks_the_clicks(run, predictor, image,
                                                  tmp_path, capsys):
  png = tmp_path / 'face.png'
  cv2.imwrite(str(png), image[..., ::-1])
  clicks = predict_px(predictor, image, Q0)
  out = tmp_path / 'q.npy'
  assert cli.main(['query', '--workdir', str(run), '--image', str(png),
                   '--crop', 'none', '--point'] +
                  [f'{x:.3f},{y:.3f}' for x, y in clicks] +
                  ['--out', str(out), '--steps', '120',
                   '--no-progress']) == 0
  printed = capsys.readouterr().out
  assert printed.count('residual') == 2 and 'query (' in printed
  q = np.load(out)
  assert q.shape == (2, 3) and q.dtype == np.float32
  pred = tmp_path / 'p.json'
  assert cli.main(['predict', '--workdir', str(run), '--image', str(png),
                   '--crop', 'none', '--layout', str(out), '--json',
                   str(pred), '--no-progress']) == 0
  got = np.array(json.loads(pred.read_text())['landmarks'])
  np.testing.assert_allclose(got, np.round(clicks, 3), atol=0.02)
  # bad input: one line, exit 2
  assert cli.main(['query', '--workdir', str(run), '--image', str(png),
                   '--crop', 'none', '--point', '1;2', '--out',
                   str(out), '--no-progress']) == 2
  assert 'error: --point' in capsys.readouterr().err


def test_render_pose_is_the_item_at_its_own_pose_and_has_exact_truth():
  faces = SyntheticFaces('syn98', 4, seed=3, image_size=64)
  item = faces[2]
  g = faces.geometry(2)
  same = faces.render_pose(2, g.pose.yaw, g.pose.pitch, g.pose.roll,
                           occlusion_prob=faces.occlusion_prob)
  np.testing.assert_array_equal(same['image'], item['image'])
  np.testing.assert_array_equal(same['landmarks'], item['landmarks'])
  assert same['pose'] == g.pose
  turned = faces.render_pose(2, 40.0, 5.0, 0.0)
  assert not np.array_equal(turned['image'], item['image'])
  truth = faces.project_queries(2, canonical.layout_queries('syn98'),
                                pose=turned['pose'])
  np.testing.assert_allclose(truth['points'], turned['landmarks'],
                             atol=1e-4)
  np.testing.assert_array_equal(truth['visible'], turned['visible'])
  # a fixed camera keeps the given pose's scale and head centre
  fixed = faces.render_pose(2, 40.0, 5.0, 0.0, keep_framing=g.pose)
  assert fixed['pose'].scale == g.pose.scale
  assert fixed['pose'].centre == g.pose.centre
