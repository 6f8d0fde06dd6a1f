import numpy as np
import pytest

from jaxlm import layouts
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
