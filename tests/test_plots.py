"""Overlays people can read: contours, face box, legend, face-sized dots,
small images enlarged; `jaxlm predict` records the layout, step and box."""

import json
import logging

import matplotlib.cbook
import numpy as np

from jaxlm import layouts, plots
from jaxlm.data.synthetic import template
from conftest import ROOT

TRAINED = ROOT / 'tests' / 'fixtures' / 'runs_v0' / 'trained'


def _face(name='syn68', size=256, centre=(128, 128), side=160):
  """A template face's landmarks (N, 2) in pixels, `side` px across."""
  f = template.sample_face_params(np.random.default_rng(0))
  uv = template.layout_uv(name, f)
  uv = (uv - uv.mean(0)) / np.ptp(uv, axis=0).max()
  return uv * side + np.asarray(centre, float)


def _lit(img):
  return img.any(-1)


def _near(img, colour, tol=40):
  """Pixels within `tol` of an RGB colour (lines are anti-aliased)."""
  return (np.abs(img.astype(int) - colour) <= tol).all(-1)


def test_contours_join_the_points_of_each_feature():
  black = np.zeros((256, 256, 3), np.uint8)
  pts = _face()
  dots = plots.draw_landmarks(black, pts)
  lines = plots.draw_landmarks(black, pts, layout='300w68')
  assert _lit(lines).sum() > _lit(dots).sum()
  for c in layouts.get('300w68').contours:  # midpoints of the segments
    a, b = pts[list(c.points[:2])]
    x, y = np.round((a + b) / 2).astype(int)
    assert _lit(lines[y - 1:y + 2, x - 1:x + 2]).any(), c.name
  # a point count that is not the layout's: dots only
  np.testing.assert_array_equal(
      plots.draw_landmarks(black, pts[:20], layout='300w68'),
      plots.draw_landmarks(black, pts[:20]))


def test_dots_are_sized_to_the_face_not_the_image():
  pts = _face(side=120)
  small = plots.draw_landmarks(np.zeros((200, 200, 3), np.uint8),
                               pts - 28)
  big = plots.draw_landmarks(np.zeros((2000, 2000, 3), np.uint8), pts)
  assert abs(int(_lit(small).sum()) - int(_lit(big).sum())) < 0.2 * _lit(
      small).sum()


def test_box_legend_and_enlarging():
  img = np.zeros((32, 32, 3), np.uint8)
  pts = _face(size=32, centre=(16, 16), side=20)
  out = plots.draw_landmarks(img, pts, gt=pts + 1, layout='syn68',
                             box=(4, 4, 28, 28), legend=True, min_size=256)
  assert out.shape == (256, 256, 3)  # 8x
  assert _near(out[:, 200], plots.FACE_BOX).sum() >= 2  # top, bottom
  assert _near(out, plots.GROUND_TRUTH, 0).any()
  assert _near(out, plots.PREDICTION, 0).any()
  assert _near(out[:40, :100], (255, 255, 255), 60).any()  # legend text
  bare = plots.draw_landmarks(img, pts, gt=pts + 1, layout='syn68',
                              box=(4, 4, 28, 28), min_size=256)
  assert not _near(bare[:40, :100], (255, 255, 255), 60).any()


def test_predict_records_layout_step_and_box(tmp_path, caplog):
  from jaxlm import predict
  photo = matplotlib.cbook.get_sample_data('grace_hopper.jpg',
                                           asfileobj=False)
  out, js = tmp_path / 'o.png', tmp_path / 'o.json'
  with caplog.at_level(logging.INFO, logger='jaxlm'):
    result = predict.predict_image(TRAINED, photo, out=str(out),
                                   json_path=str(js))
  assert json.loads(js.read_text()) == result
  # before: "box": null although the cascade had found the face
  assert result['box'] == [155.0, 105.0, 377.0, 327.0]
  assert result['layout'] == 'syn29' and result['step'] == 3
  assert 'layout syn29 (the first training dataset' in caplog.text
  from jaxlm.inference import load_image
  picture = load_image(out)
  assert picture.shape == (600, 512, 3)
  assert _near(picture[105:328, 155], plots.FACE_BOX).sum() > 150
  none = predict.predict_image(TRAINED, photo, crop='none', layout='syn68')
  assert none['box'] is None and none['layout'] == 'syn68'
  assert none['num_points'] == 68
