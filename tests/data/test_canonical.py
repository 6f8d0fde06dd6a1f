"""The synthetic face's public geometry (data/synthetic/canonical.py) and the
3D query tables (data/query_tables): exact truth for any canonical point."""

import numpy as np
import pytest

from jaxlm import layouts
from jaxlm.data import query_tables
from jaxlm.data.query_tables import make_tables
from jaxlm.data.synthetic import SyntheticFaces, canonical
from jaxlm.data.synthetic import template as T
from jaxlm.errors import JaxlmError


@pytest.fixture(scope='module')
def faces():
  return SyntheticFaces('syn98', 64, seed=7, image_size=128)


def test_layout_queries_give_the_items_own_landmarks(faces):
  q = canonical.layout_queries('syn98')
  for i in (0, 1):
    item = faces[i]
    truth = faces.project_queries(i, q)
    np.testing.assert_array_equal(truth['points'], item['landmarks'])
    np.testing.assert_array_equal(truth['visible'], item['visible'])


def test_canonical_queries_are_the_points_of_the_reference_face():
  q = canonical.layout_queries('syn68').canonical()
  uv = T.layout_uv('syn68', canonical.CANONICAL)
  expect = T.surface(uv[:, 0], uv[:, 1], canonical.CANONICAL)
  np.testing.assert_allclose(q, expect, atol=1e-6)
  assert q.shape == (68, 3) and q.dtype == np.float32
  # a face: eyes above the mouth (y down), nose tip nearest the camera
  spec = layouts.get('syn68')
  assert q[spec.groups['eyes'], 1].max() < q[spec.groups['mouth'], 1].min()
  assert np.argmax(q[:, 2]) in spec.groups['nose']


def test_warp_is_the_identity_on_c_and_keeps_features_on_other_faces(faces):
  uv = canonical.grid_uv(0.1)
  np.testing.assert_array_equal(canonical.warp_uv(uv, canonical.CANONICAL),
                                uv)
  for i in range(4):
    f = faces.geometry(i).face
    # curve points it interpolates: exact; curve points between them: close
    for curve, side, ts in [('eye', 1, np.arange(8) * np.pi / 4),
                            ('jaw', 0, np.linspace(-1, 1, 17))]:
      got = canonical.warp_uv(canonical.curve_uv(canonical.CANONICAL, curve,
                                                 side, ts), f)
      np.testing.assert_allclose(got, canonical.curve_uv(f, curve, side, ts),
                                 atol=1e-4)
    ts = np.linspace(-0.95, 0.95, 40)
    got = canonical.warp_uv(canonical.curve_uv(canonical.CANONICAL, 'jaw', 0,
                                               ts), f)
    assert np.abs(got - canonical.curve_uv(f, 'jaw', 0, ts)).max() < 0.02


def test_off_surface_points_lie_depth_behind_the_surface(faces):
  uv = canonical.grid_uv(0.2)
  f = faces.geometry(3).face
  on = canonical.surface_queries(uv).points_on(f)
  off = canonical.surface_queries(uv, 0.05).points_on(f)
  np.testing.assert_allclose(np.linalg.norm(on - off, axis=-1), 0.05,
                             rtol=1e-6)
  assert np.all(off[:, 2] < on[:, 2] + 0.02)  # behind: away from the camera
  # visible exactly where the surface point above it is
  a = faces.project_queries(3, canonical.surface_queries(uv))
  b = faces.project_queries(3, canonical.surface_queries(uv, 0.05))
  np.testing.assert_array_equal(a['visible'], b['visible'])
  assert np.abs(a['points'] - b['points']).max() > 0.5  # it moved


def test_self_occlusion_at_large_yaw():
  ds = SyntheticFaces('syn98', 200, seed=3, image_size=128)
  i = next(i for i in range(200) if abs(ds.geometry(i).pose.yaw) > 45)
  yaw = ds.geometry(i).pose.yaw
  # positive yaw turns the face to the image's right: its u > 0 half (the
  # image-right one) turns away from the camera
  far_side = np.sign(yaw)
  uv = canonical.grid_uv(0.05)
  vis = ds.project_queries(i, canonical.surface_queries(uv))['visible']
  far = np.sign(uv[:, 0]) == far_side
  assert vis[~far].mean() > 0.9 > 0.7 > vis[far & (np.abs(uv[:, 0]) > 0.5)
                                             ].mean()


def test_dense_layout_starts_with_the_eye_corners_and_pupils():
  dense = SyntheticFaces('syndense', 3, seed=4, image_size=96)
  sparse = SyntheticFaces('syn98', 3, seed=4, image_size=96)
  item = dense[0]
  assert item['landmarks'].shape == (2048, 2)
  spec = layouts.get('syn98')
  first = list(spec.outer_eye_corners) + [p[0] for p in spec.pupils]
  np.testing.assert_allclose(item['landmarks'][:4],
                             sparse.landmarks(0)[first], atol=1e-3)
  # the same face as any layout of the same seed and index
  assert dense.geometry(0) == sparse.geometry(0)


def test_grid_and_curve_queries():
  assert 1900 < len(canonical.grid_uv(0.032)) < 2100
  assert canonical.in_dense_region(canonical.grid_uv(0.05)).all()
  jaw = canonical.curve_queries('jaw', 0, np.linspace(-1, 1, 65))
  eye = canonical.curve_queries('eye', -1, np.arange(16) * np.pi / 8)
  both = jaw + eye
  assert len(both) == 81 and both.canonical().shape == (81, 3)
  with pytest.raises(KeyError, match='unknown curve'):
    canonical.curve_queries('ear', 0, [0.0])


def test_real_query_tables_are_the_layouts_semantics_on_c():
  assert make_tables.main(['--check']) == 0
  for real, twin in [('wflw98', 'syn98'), ('300w68', 'syn68'),
                     ('merlrav68', 'syn68'), ('cofw29', 'syn29'),
                     ('aflw19', 'syn19')]:
    t = query_tables.layout_queries(real)
    uv = T.layout_uv(twin, canonical.CANONICAL, convention=False)
    np.testing.assert_allclose(
        t, T.surface(uv[:, 0], uv[:, 1], canonical.CANONICAL), atol=1e-6)
  # 300W's jaw carries no synthetic convention (syn68's is shifted)
  jaw = list(layouts.get('300w68').groups['jaw'])
  assert not np.allclose(query_tables.layout_queries('300w68')[jaw],
                         query_tables.layout_queries('syn68')[jaw])
  c5 = query_tables.layout_queries('celeba5')
  w98 = query_tables.layout_queries('wflw98')
  np.testing.assert_allclose(c5[[0, 1, 3, 4]], w98[[96, 97, 76, 82]],
                             atol=1e-6)
  with pytest.raises(JaxlmError, match='no 3D query table'):
    query_tables.layout_queries('nope')
  table = query_tables.queries_table(['syn29', 'cofw29'])
  assert table.shape == (58, 3)
