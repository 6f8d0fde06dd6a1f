"""Materialisation barriers survive XLA:CPU only under CPU_COMPILER_OPTIONS,
and the HRNet 1x1 convolution as a matrix product equals nn.Conv."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxlm.models import hrnet
from jaxlm.models.materialize import CPU_COMPILER_OPTIONS, materialize


def _f(x):
  y = materialize(jnp.exp(x) * 2.0)
  return (y @ y).sum()


def test_barrier_is_kept_only_with_the_cpu_options():
  x = jnp.ones((8, 8))
  plain = jax.jit(_f).lower(x).compile().as_text()
  kept = jax.jit(_f, compiler_options=CPU_COMPILER_OPTIONS).lower(
      x).compile().as_text()
  assert 'opt-barrier' in kept
  if jax.default_backend() == 'cpu':
    assert 'opt-barrier' not in plain
  np.testing.assert_allclose(jax.jit(_f, compiler_options=(
      CPU_COMPILER_OPTIONS))(x), _f(x), rtol=1e-6)


def test_pointwise_conv_matches_a_1x1_conv():
  x = jax.random.normal(jax.random.key(0), (2, 7, 5, 6))
  for stride, bias in ((1, True), (2, False)):
    ref = nn.Conv(4, (1, 1), (stride, stride), padding=((0, 0), (0, 0)),
                  use_bias=bias)
    params = ref.init(jax.random.key(1), x)
    ours = hrnet.PointwiseConv(4, stride, bias)
    assert jax.tree.map(jnp.shape, ours.init(jax.random.key(1), x)) == \
        jax.tree.map(jnp.shape, params)
    np.testing.assert_allclose(ours.apply(params, x), ref.apply(params, x),
                               rtol=1e-5, atol=1e-6)
