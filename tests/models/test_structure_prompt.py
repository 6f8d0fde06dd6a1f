import jax.numpy as jnp
import numpy as np
import pytest

from jaxlm.models.structure_prompt import axis_frequencies, encode_prompts


def test_matches_equations_6_1_to_6_3_by_hand():
  width = 8  # 4 features per axis: d = [1, 1, 100, 100] for tau = 1e4
  anchors = jnp.array([[0.75, 0.25]])  # x = 0.5, y = -0.5 after 2c - 1
  got = np.asarray(encode_prompts(anchors, width))[0]
  x, y = 0.5, -0.5
  d = [1.0, 1.0, 100.0, 100.0]

  def axis(c):
    return [np.sin(c / d[0]), np.cos(c / d[1]), np.sin(c / d[2]),
            np.cos(c / d[3])]

  np.testing.assert_allclose(got, axis(y) + axis(x), rtol=1e-6)


def test_shift_is_a_rotation_of_each_pair():
  """Eq. 6.4-6.5: E(c + delta) = R(delta / d_i) E(c) for each (sin, cos)."""
  width = 64
  a = jnp.array([[0.3, 0.6]])
  delta = jnp.array([[0.05, -0.02]])
  e0 = np.asarray(encode_prompts(a, width))[0]
  e1 = np.asarray(encode_prompts(a + delta, width))[0]
  d = np.asarray(axis_frequencies(width))
  half = width // 2
  for offset, dc in ((0, 2 * float(delta[0, 1])), (half, 2 * float(delta[0, 0]))):
    for i in range(0, half, 2):
      ang = dc / d[i]
      rot = np.array([[np.cos(ang), np.sin(ang)], [-np.sin(ang), np.cos(ang)]])
      pair0 = e0[offset + i:offset + i + 2]  # (sin, cos)
      pair1 = e1[offset + i:offset + i + 2]
      np.testing.assert_allclose(pair1, rot @ pair0, atol=1e-5)


def test_batch_shapes_and_bad_width():
  assert encode_prompts(jnp.zeros((2, 5, 2)), 384).shape == (2, 5, 384)
  with pytest.raises(ValueError, match='multiple of 4'):
    encode_prompts(jnp.zeros((1, 2)), 382)
