import numpy as np
import pytest

from jaxlm import layouts
from jaxlm.data import synthetic
from jaxlm.data.synthetic import template


@pytest.mark.parametrize('name', sorted(layouts.LAYOUTS))
def test_flip_is_an_involution_and_a_permutation(name):
  lay = layouts.get(name)
  perm = np.asarray(lay.flip_permutation)
  assert sorted(perm) == list(range(lay.num_points))
  np.testing.assert_array_equal(perm[perm], np.arange(lay.num_points))
  flat = [i for p in lay.flip_pairs for i in p]
  assert len(flat) == len(set(flat)), 'a point is in two flip pairs'


@pytest.mark.parametrize('name', sorted(layouts.LAYOUTS))
def test_indices_in_range(name):
  lay = layouts.get(name)
  idx = list(lay.outer_eye_corners) + [i for p in lay.pupils for i in p]
  idx += [i for g in lay.groups.values() for i in g]
  assert all(0 <= i < lay.num_points for i in idx)


@pytest.mark.parametrize('name', template.SYNTHETIC_LAYOUTS)
def test_flip_pairs_are_mirror_symmetric_on_the_template(name):
  """On a symmetric face, flipping u and permuting gives the same shape."""
  rng = np.random.default_rng(0)
  f = template.sample_face_params(rng)
  f = f.__class__(**{**f.__dict__, 'gaze': (0.0, f.gaze[1])})
  uv = template.layout_uv(name, f)
  mirrored = uv * [-1, 1]
  perm = np.asarray(layouts.get(name).flip_permutation)
  np.testing.assert_allclose(mirrored[perm], uv, atol=1e-9)
  # ... and the outer eye corners are mirror images of each other.
  i, j = layouts.get(name).outer_eye_corners
  assert uv[i, 0] < 0 < uv[j, 0]


def test_unknown_layout_names_the_known_ones():
  with pytest.raises(KeyError, match='wflw98'):
    layouts.get('wflw97')


# Each real layout and the synthetic twin whose template shape checks it.
_TWINS = {'wflw98': 'syn98', '300w68': 'syn68', 'merlrav68': 'syn68',
          'cofw29': 'syn29', 'aflw19': 'syn19'}


@pytest.mark.parametrize('real,twin', sorted(_TWINS.items()))
def test_real_layouts_share_their_twins_tested_scheme(real, twin):
  a, b = layouts.get(real), layouts.get(twin)
  assert (a.num_points, a.flip_pairs, a.outer_eye_corners, a.pupils) == (
      b.num_points, b.flip_pairs, b.outer_eye_corners, b.pupils)


def test_every_real_layout_is_checked():
  real = (set(layouts.LAYOUTS) - set(synthetic.SYNTHETIC_LAYOUTS) -
          {'celeba5'})
  assert real == set(_TWINS)


def test_celeba5_flip_is_mirror_symmetric_on_the_wflw_template():
  """CelebA's 5 points are WFLW's pupils, nose tip and mouth corners."""
  f = template.sample_face_params(np.random.default_rng(1))
  f = f.__class__(**{**f.__dict__, 'gaze': (0.0, 0.0)})
  uv = template.layout_uv('syn98', f)[[96, 97, 54, 76, 82]]
  perm = np.asarray(layouts.get('celeba5').flip_permutation)
  np.testing.assert_allclose((uv * [-1, 1])[perm], uv, atol=1e-9)
  assert uv[0, 0] < 0 < uv[1, 0] and uv[3, 0] < 0 < uv[4, 0]


def test_flipping_a_real_face_twice_is_the_identity(real_samples):
  from jaxlm.data.formats import ibug
  rec = next(ibug.read_pts_folders(real_samples / '300w', ['lfpw/trainset']))
  perm = np.asarray(layouts.get('300w68').flip_permutation)
  w = 500.0
  flip = lambda p: (p * [-1, 1] + [w - 1, 0])[perm]
  np.testing.assert_allclose(flip(flip(rec.landmarks)), rec.landmarks)
  # The flipped face's outer eye corners still read left-to-right.
  i, j = layouts.get('300w68').outer_eye_corners
  assert flip(rec.landmarks)[i, 0] < flip(rec.landmarks)[j, 0]


@pytest.mark.parametrize('name', sorted(layouts.LAYOUTS))
def test_contours_follow_the_groups_and_the_flip(name):
  lay = layouts.get(name)
  for c in lay.contours:
    assert len(c.points) >= 2 and len(set(c.points)) == len(c.points), c
    assert any(set(c.points) <= set(g) for g in lay.groups.values()), c
  # a mirrored face has the same contours (left brow <-> right brow, ...)
  perm = lay.flip_permutation
  shapes = {(frozenset(c.points), c.closed) for c in lay.contours}
  assert {(frozenset(perm[i] for i in pts), closed)
          for pts, closed in shapes} == shapes
  if lay.contours and lay.num_points >= 19:  # every feature point is drawn
    on = {i for c in lay.contours for i in c.points}
    for group, idx in lay.groups.items():
      if group != 'pupils' and len(idx) > 1:
        assert set(idx) <= on, (group, sorted(set(idx) - on))


def _segments_cross(a, b, c, d) -> bool:
  def side(p, q, r):
    return np.sign((q[0] - p[0]) * (r[1] - p[1]) -
                   (q[1] - p[1]) * (r[0] - p[0]))
  return (side(a, b, c) * side(a, b, d) < 0 and
          side(c, d, a) * side(c, d, b) < 0)


@pytest.mark.parametrize('name', template.SYNTHETIC_LAYOUTS)
def test_contours_do_not_cross_themselves_on_the_template(name):
  """Drawn in their order, an eye or a lip is a simple polygon: a wrong
  point order (corner, corner, upper, lower) crosses itself."""
  for seed in range(3):
    f = template.sample_face_params(np.random.default_rng(seed))
    uv = template.layout_uv(name, f)
    for c in layouts.get(name).contours:
      pts = uv[list(c.points)]
      segs = list(zip(pts[:-1], pts[1:]))
      if c.closed:
        segs.append((pts[-1], pts[0]))
      for i in range(len(segs)):
        for j in range(i + 2, len(segs)):
          if c.closed and i == 0 and j == len(segs) - 1:
            continue  # neighbours through the closing point
          assert not _segments_cross(*segs[i], *segs[j]), (name, c.name)
