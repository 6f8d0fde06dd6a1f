import jax.numpy as jnp
import pytest

from jaxlm.losses import weighted_l1


def test_l1_by_hand_over_layers():
  target = jnp.zeros((1, 2, 2))
  pred = jnp.stack([jnp.array([[[1.0, 0.0], [0.0, 0.0]]]),   # sum |.| = 1
                    jnp.array([[[1.0, 1.0], [1.0, 1.0]]])])  # sum |.| = 4
  # layer means: 1/4 and 4/4 -> average 0.625
  assert float(weighted_l1(pred, target, jnp.ones((1, 2)))) == pytest.approx(0.625)


def test_zero_weight_points_do_not_count():
  target = jnp.zeros((1, 2, 2))
  pred = jnp.array([[[[0.5, 0.5], [100.0, -100.0]]]])
  w = jnp.array([[1.0, 0.0]])
  assert float(weighted_l1(pred, target, w)) == pytest.approx(0.5)
  assert float(weighted_l1(pred, target, jnp.zeros((1, 2)))) == 0.0
