"""Exact camera truth, loose framing, videos and static copies of the
synthetic faces (data/synthetic): what pose, intrinsics, spatial-transformer
and tracking models are measured against."""

import cv2
import ml_collections
import numpy as np
import pytest

from jaxlm.data import crop, sources
from jaxlm.data.synthetic import Geometry, SyntheticFaces, canonical, render

S = 96


@pytest.fixture(scope='module')
def faces():
  return SyntheticFaces('syn98', 12, seed=4, image_size=S)


@pytest.fixture(scope='module')
def loose():
  return SyntheticFaces('syn98', 12, seed=4, image_size=S, loose_framing=True)


def _queries():
  """Layout, curve and surface points, on and behind the surface."""
  uv = canonical.grid_uv(0.15)
  return (canonical.layout_queries('syn68') +
          canonical.curve_queries('jaw', 0, np.linspace(-1, 1, 9)) +
          canonical.surface_queries(uv) +
          canonical.surface_queries(uv, 0.05))


def _pinhole(g: Geometry, p):
  """Pixels of head points p by the documented formula."""
  rp = p @ g.rotation.T
  d = -g.translation[2]
  return g.focal * rp[:, :2] / (d - rp[:, 2:]) + g.principal_point


def _truth_cases(faces, loose):
  """(dataset, index, pose, face) of items and of a video frame."""
  v = faces.video_geometry(5, 8)[7]
  return [(faces, 0, None, None), (faces, 3, None, None),
          (loose, 1, None, None), (faces, 5, v.pose, v.face)]


def test_pinhole_camera_truth_gives_project_queries_pixels(faces, loose):
  q = _queries()
  for ds, i, pose, face in _truth_cases(faces, loose):
    g = ds.geometry(i) if pose is None else Geometry(face, pose)
    truth = ds.project_queries(i, q, pose=pose, face=face)
    pix = _pinhole(g, q.points_on(g.face))
    np.testing.assert_allclose(pix, truth['points'], atol=1e-4)
    # camera frame: X = R p + t, depth -X_z in front of the camera
    x = ds.camera_points(i, q, pose=pose, face=face)
    np.testing.assert_allclose(
        x, q.points_on(g.face) @ g.rotation.T + g.translation, atol=1e-9)
    assert x.shape == (len(q), 3) and np.all(-x[:, 2] > 0)
    np.testing.assert_allclose(
        g.focal * x[:, :2] / -x[:, 2:] + g.principal_point, truth['points'],
        atol=1e-4)
    # the head centre is the principal point (not the image centre)
    np.testing.assert_allclose(g.principal_point, g.pose.centre)
    np.testing.assert_allclose(_pinhole(g, np.zeros((1, 3)))[0],
                               g.principal_point)
    k = g.intrinsics
    assert k[0, 0] == k[1, 1] == g.focal and np.all(k[:2, 2] ==
                                                    g.principal_point)


def test_rotation_and_euler_are_the_poses(faces, loose):
  for ds, i, pose, face in _truth_cases(faces, loose):
    g = ds.geometry(i) if pose is None else Geometry(face, pose)
    assert g.euler == (g.pose.yaw, g.pose.pitch, g.pose.roll)
    r = g.rotation
    np.testing.assert_allclose(r, render.rotation(*g.euler))
    np.testing.assert_allclose(r @ r.T, np.eye(3), atol=1e-12)
    assert np.linalg.det(r) == pytest.approx(1.0)
    np.testing.assert_array_equal(g.translation, [0, 0, -8.0])
    assert g.focal == pytest.approx(8.0 * g.pose.scale)
  # positive yaw turns the face (its +z) to the image's right
  g = Geometry(faces.geometry(0).face, render.Pose(30.0, 0.0, 0.0, 10.0,
                                                   (48.0, 48.0)))
  assert (g.rotation @ [0, 0, 1.0])[0] > 0.4


def test_opencv_convention_of_the_docstring(faces):
  """Flipping z in both frames gives OpenCV's camera: cv2.projectPoints."""
  q = _queries()
  g = faces.geometry(2)
  flip = np.diag([1.0, 1.0, -1.0])
  rvec, _ = cv2.Rodrigues(flip @ g.rotation @ flip)
  p = q.points_on(g.face) @ flip
  pix, _ = cv2.projectPoints(p, rvec, np.array([0.0, 0.0, 8.0]),
                             g.intrinsics, None)
  np.testing.assert_allclose(pix[:, 0], faces.project_queries(2, q)['points'],
                             atol=1e-4)


def test_loose_framing_box_and_face_size(faces, loose):
  offsets = []
  for i in range(8):
    item = loose[i]
    box = item['box']
    assert box.shape == (4,) and box.dtype == np.float64
    assert np.all(box >= 0) and np.all(box <= S)
    side = box[2] - box[0]
    assert box[3] - box[1] == pytest.approx(side)
    assert S / 3 - 1e-6 <= side <= S / 2 + 1e-6
    offsets.append((box[:2] + box[2:]) / 2 - S / 2)
    lm = item['landmarks']  # the 98-point box: inside the crop box
    assert np.all(lm.min(0) >= box[:2]) and np.all(lm.max(0) <= box[2:])
    dflt = faces.landmarks(i)
    ratio = np.ptp(dflt, 0).max() / np.ptp(lm, 0).max()
    assert 2 - 1e-3 <= ratio <= 3 + 1e-3
    # cropping the box gives the default framing exactly
    m = crop.square_crop_affine(box, S, factor=1.0)
    np.testing.assert_allclose(crop.apply_affine(m, lm), dflt, atol=1e-3)
    np.testing.assert_allclose(loose.crop_box(i), box)
    np.testing.assert_allclose(faces.crop_box(i), [0, 0, S, S], atol=1e-9)
    # same identity, angles and look draws as the default dataset
    assert loose.geometry(i).face == faces.geometry(i).face
    assert (loose.geometry(i).euler == faces.geometry(i).euler)
  offsets = np.abs(np.array(offsets))
  assert offsets.max() <= 0.25 * S + 1e-6 and offsets.max() > 0.1 * S


def test_defaults_unchanged_by_the_option(faces):
  plain = SyntheticFaces('syn98', 12, seed=4, image_size=S,
                         loose_framing=False)
  for i in (0, 7):
    a, b = faces[i], plain[i]
    assert set(a) == set(b) == {'image', 'landmarks', 'visible', 'occluded',
                                'index'}
    for k in a:
      np.testing.assert_array_equal(a[k], b[k])
  r = faces.render_pose(1, 10.0, 0.0, 0.0)
  assert 'box' not in r


def test_loose_render_pose_and_project_queries_agree(loose):
  q = canonical.layout_queries('syn98')
  g = loose.geometry(2)
  own = loose.render_pose(2, *g.euler, occlusion_prob=loose.occlusion_prob)
  item = loose[2]
  np.testing.assert_array_equal(own['image'], item['image'])
  np.testing.assert_array_equal(own['box'], item['box'])
  other = loose.render_pose(2, g.euler[0] - 25.0, 5.0, -10.0)
  truth = loose.project_queries(2, q, pose=other['pose'])
  np.testing.assert_array_equal(truth['points'], other['landmarks'])
  np.testing.assert_array_equal(truth['visible'], other['visible'])
  # the item's framing: the same crop box at the new pose
  np.testing.assert_allclose(other['box'], item['box'], atol=1e-9)
  fixed = loose.render_pose(2, 0.0, 0.0, 0.0, keep_framing=g.pose)
  assert fixed['pose'].centre == g.pose.centre
  truth = loose.project_queries(2, q, pose=fixed['pose'])
  np.testing.assert_array_equal(truth['points'], fixed['landmarks'])


def test_config_key_reaches_the_source():
  cfg = ml_collections.ConfigDict(dict(source='synthetic', layout='syn29',
                                       size=4, seed=2))
  src = sources.make_source('syn', cfg, 64)
  assert not src.loose_framing and 'box' not in src[0]
  cfg.loose_framing = True
  src = sources.make_source('syn', cfg, 64)
  assert src.loose_framing and src[0]['box'].shape == (4,)


def test_video_is_deterministic_smooth_and_exact(faces):
  n = 24
  v = faces.video(6, n)
  w = faces.video(6, n)
  for k in ('images', 'landmarks', 'visible', 'occluded'):
    np.testing.assert_array_equal(v[k], w[k])
  assert v['poses'] == w['poses'] and v['faces'] == w['faces']
  assert v['images'].shape == (n, S, S, 3) and v['landmarks'].shape == (
      n, 98, 2)
  lm = v['landmarks'].astype(np.float64)
  size = np.ptp(lm[0], 0).max()
  step = np.linalg.norm(np.diff(lm, axis=0), axis=-1).max(-1)
  accel = np.linalg.norm(np.diff(lm, 2, axis=0), axis=-1).max(-1)
  assert step.max() < 0.05 * size and accel.max() < 0.3 * step.max()
  angles = np.array([[p.yaw, p.pitch, p.roll] for p in v['poses']])
  assert np.all(np.abs(angles) <= 0.5 * np.array(faces.max_angles) + 1e-9)
  assert np.abs(np.diff(angles, axis=0)).max() < 5.0
  assert np.ptp(angles[:, 0]) > 2.0  # it moves
  # a fixed camera: frame 0's framing
  first = faces.render_pose(6, *angles[0], face=v['faces'][0])['pose']
  assert all(p.scale == first.scale and p.centre == first.centre
             for p in v['poses'])
  # expression changes smoothly, identity does not
  mouth = np.array([f.mouth_open for f in v['faces']])
  eyes = np.array([f.eye_open for f in v['faces']])
  assert np.ptp(mouth) > 0.004 and np.abs(np.diff(mouth)).max() < 0.01
  assert np.all((eyes >= 0.25 - 1e-9) & (eyes <= 1.1 + 1e-9))
  assert len({(f.height, f.eye_x, f.jaw_w) for f in v['faces']}) == 1
  q = canonical.layout_queries('syn98')
  for t in (0, 9, n - 1):
    truth = faces.project_queries(6, q, pose=v['poses'][t],
                                  face=v['faces'][t])
    np.testing.assert_array_equal(truth['points'], v['landmarks'][t])
    np.testing.assert_array_equal(truth['visible'], v['visible'][t])
  # video_geometry: the same path without rendering
  geo = faces.video_geometry(6, n)
  assert [g.pose for g in geo] == v['poses']


def test_video_noise_and_framing_options(loose):
  a = loose.video(3, 6, noise_seed=0)
  b = loose.video(3, 6, noise_seed=1)
  np.testing.assert_array_equal(a['landmarks'], b['landmarks'])
  diff = np.abs(a['images'].astype(int) - b['images']).mean()
  assert 0 < diff < 8
  assert a['box'].shape == (6, 4)
  follow = loose.video(3, 6, keep_framing=False, expression=False)
  assert len({p.scale for p in follow['poses']}) > 1
  assert all(f == loose.geometry(3).face for f in follow['faces'])
  np.testing.assert_allclose(follow['box'], loose[3]['box'][None].repeat(6, 0),
                             atol=1e-9)
  with pytest.raises(ValueError, match='amplitude'):
    loose.video_geometry(3, 2, amplitude=1.5)


def test_static_copies_differ_by_noise_only(faces):
  item = faces[3]
  copies = faces.static_copies(3, 3)
  assert copies['images'].shape == (3, S, S, 3)
  for k in ('landmarks', 'visible', 'occluded'):
    np.testing.assert_array_equal(copies[k], item[k])
  images = [item['image']] + list(copies['images'])
  for a in range(4):
    for b in range(a + 1, 4):
      d = images[a].astype(np.float64) - images[b]
      assert 0 < np.abs(d).mean() < 8  # independent noise, nothing else
      assert abs(d.mean()) < 0.5
      # no structure: the blurred difference is far smaller
      assert np.abs(cv2.blur(d, (7, 7))).mean() < 0.35 * np.abs(d).mean()
  g = faces.geometry(3)
  again = faces.render_pose(3, *g.euler, occlusion_prob=faces.occlusion_prob,
                            noise_seed=1)
  np.testing.assert_array_equal(again['image'], copies['images'][1])
