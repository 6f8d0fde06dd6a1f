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


def test_pointwise_conv_gradients_match_a_1x1_conv():
  """`channel_product`'s custom VJP (a barrier on the incoming gradient)
  gives nn.Conv's gradients, strided or not, in float32 and bfloat16."""
  x = jax.random.normal(jax.random.key(0), (2, 8, 6, 5))
  ct = jax.random.normal(jax.random.key(2), (2, 8, 6, 4))
  for dtype, tol in ((jnp.float32, 1e-5), (jnp.bfloat16, 2e-2)):
    for stride in (1, 2):
      ref = nn.Conv(4, (1, 1), (stride, stride), padding=((0, 0), (0, 0)),
                    use_bias=True, dtype=dtype)
      ours = hrnet.PointwiseConv(4, stride, True, dtype)
      params = ref.init(jax.random.key(1), x)

      def loss(m, params, x):
        y = jnp.tanh(m.apply(params, jnp.sin(x)).astype(jnp.float32))
        return (y * ct[:, ::stride, ::stride]).sum()

      got = jax.jit(jax.grad(lambda p, x: loss(ours, p, x), (0, 1)))(params, x)
      want = jax.grad(lambda p, x: loss(ref, p, x), (0, 1))(params, x)
      for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
        scale = float(jnp.abs(b).max())
        np.testing.assert_allclose(a, b, rtol=0, atol=tol * scale)


def test_remat_dots_policy_saves_the_1x1_product():
  """Under model.remat='dots' a block saves its products; the custom VJP
  must leave the 1x1 product visible to that policy (saved, not
  recomputed in the backward pass)."""
  import contextlib, io  # pylint: disable=g-import-not-at-top,multiple-imports
  import jax.ad_checkpoint  # pylint: disable=g-import-not-at-top
  from jaxlm.models.remat import POLICIES  # pylint: disable=g-import-not-at-top
  x = jnp.ones((2, 8, 6, 5))
  kernel = jnp.ones((5, 4))
  f = jax.checkpoint(lambda x, k: jnp.tanh(hrnet.channel_product(x, k)).sum(),
                     policy=POLICIES['dots'])
  out = io.StringIO()
  with contextlib.redirect_stdout(out):
    jax.ad_checkpoint.print_saved_residuals(f, x, kernel)
  saved = [line for line in out.getvalue().splitlines()
           if not line.split(' ', 1)[1].startswith('from the argument')]
  assert any(line.startswith('f32[2,8,6,4]') for line in saved), saved
