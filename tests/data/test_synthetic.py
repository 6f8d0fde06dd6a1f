import numpy as np
import pytest

from jaxlm import layouts
from jaxlm.data.pipeline import mean_shape
from jaxlm.data.synthetic import SyntheticFaces, render, template


@pytest.fixture(scope='module')
def ds():
  return SyntheticFaces('syn98', 50, seed=3, image_size=128)


def test_item_is_deterministic_and_well_formed(ds):
  a, b = ds[7], ds[7]
  np.testing.assert_array_equal(a['image'], b['image'])
  np.testing.assert_array_equal(a['landmarks'], b['landmarks'])
  assert a['image'].shape == (128, 128, 3) and a['image'].dtype == np.uint8
  assert a['landmarks'].shape == (98, 2)
  assert a['visible'].dtype == bool and a['occluded'].shape == (98,)
  assert not np.array_equal(ds[8]['image'], a['image'])
  assert a['image'].std() > 10  # not a blank image


def test_landmarks_without_rendering_match(ds):
  for i in (0, 5, 11):
    np.testing.assert_allclose(ds.landmarks(i), ds[i]['landmarks'], atol=1e-4)


def test_faces_are_framed_like_the_crop_rule(ds):
  for i in range(10):
    p = ds.landmarks(i)
    side = (p.max(0) - p.min(0)).max()
    assert 128 / 1.3 < side < 128 / 1.1
    centre = (p.max(0) + p.min(0)) / 2
    assert np.all(np.abs(centre - 64) < 0.07 * 128)


def test_self_occlusion_at_large_yaw():
  """Turning the head hides the far side of the jaw contour, not the near."""
  rng = np.random.default_rng(0)
  f = template.sample_face_params(rng)
  uv = template.layout_uv('syn68', f)
  # Positive yaw turns the face to the image's right: its right-hand side
  # (jaw points 13-16 of the 68-point scheme) turns away from the camera.
  for yaw, far in ((55.0, slice(13, 17)), (-55.0, slice(0, 4))):
    pose = render.Pose(yaw, 0.0, 0.0, 50.0, (128.0, 128.0))
    _, info = render.render(np.random.default_rng(1), f, pose, {'syn68': uv},
                            256, occlusion_prob=0.0)
    vis = info['syn68']['visible']
    assert not vis[far].any(), (yaw, vis[far])
    near = slice(0, 4) if yaw > 0 else slice(13, 17)
    assert vis[near].all()
  pose = render.Pose(0.0, 0.0, 0.0, 50.0, (128.0, 128.0))
  _, info = render.render(np.random.default_rng(1), f, pose, {'syn68': uv},
                          256, occlusion_prob=0.0)
  assert info['syn68']['visible'][17:].all()  # frontal: inner points visible


def test_layout_conventions_differ_between_layouts():
  """syn29 and syn98 place 'the same' outer eye corner differently."""
  f = template.sample_face_params(np.random.default_rng(2))
  a = template.layout_uv('syn29', f)[list(layouts.get('syn29').outer_eye_corners)]
  b = template.layout_uv('syn98', f)[list(layouts.get('syn98').outer_eye_corners)]
  assert 0.005 < np.abs(a - b).max() < 0.05


def test_mean_shape_in_crop_units(ds):
  m = mean_shape(ds, 20, 128)
  assert m.shape == (98, 2) and np.all((m > 0.05) & (m < 0.95))


def test_bad_layout_and_index():
  with pytest.raises(KeyError, match='syn98'):
    SyntheticFaces('wflw98', 3)
  with pytest.raises(IndexError):
    SyntheticFaces('syn29', 3)[3]
