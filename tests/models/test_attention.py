"""Attention weights sown on request (`attention.py`): the weights the
forward applies, and a forward without the request traces the plain
program."""

import jax
import jax.numpy as jnp
import numpy as np

import pytest

from jaxlm.models.attention import MultiHeadAttention, attend_per_head
from jaxlm.models.prompt_decoder import PromptDecoder, cross_attention_weights


def _inputs():
  kq, kk, kv = jax.random.split(jax.random.key(0), 3)
  return (jax.random.normal(kq, (2, 5, 12)), jax.random.normal(kk, (2, 7, 12)),
          jax.random.normal(kv, (2, 7, 12)))


def test_sown_weights_are_the_ones_the_output_applies():
  q, k, v = _inputs()
  m = MultiHeadAttention(3, sow_weights=True)
  params = m.init(jax.random.key(1), q, k, v)
  out, state = m.apply(params, q, k, v, mutable=['intermediates'])
  (w,) = state['intermediates']['attention_weights']
  assert w.shape == (2, 3, 5, 7)  # (B, heads, T, S)
  np.testing.assert_allclose(w.sum(-1), 1.0, atol=1e-6)
  # Rebuild the output in NumPy from the weights and the projections alone.
  p = jax.tree_util.tree_map(np.asarray, params['params'])
  val = (np.asarray(v) @ p['value']['kernel'] + p['value']['bias']).reshape(
      2, 7, 3, 4)
  heads = np.einsum('bhts,bshd->bthd', np.asarray(w), val).reshape(2, 5, 12)
  expected = heads @ p['out']['kernel'] + p['out']['bias']
  np.testing.assert_allclose(out, expected, atol=1e-5)
  np.testing.assert_array_equal(out, m.apply(params, q, k, v))


def test_forward_without_the_request_traces_the_plain_program():
  q, k, v = _inputs()
  plain = MultiHeadAttention(3)
  params = plain.init(jax.random.key(1), q, k, v)
  sowing = MultiHeadAttention(3, sow_weights=True)
  trace = lambda m: str(jax.make_jaxpr(lambda p: m.apply(p, q, k, v))(params))
  assert trace(sowing) == trace(plain)
  with_weights = str(jax.make_jaxpr(lambda p: sowing.apply(
      p, q, k, v, mutable=['intermediates']))(params))
  assert with_weights != trace(plain)


def test_prompt_decoder_sows_every_layer_through_remat():
  q, k, _ = _inputs()
  pos = jnp.zeros_like(k)
  got = []
  for remat in ('none', 'blocks'):
    d = PromptDecoder(num_layers=2, num_heads=3, mlp_dim=16, remat=remat)
    params = d.init(jax.random.key(2), k, pos, q)
    _, state = d.apply(params, k, pos, q, mutable=['intermediates'])
    got.append(cross_attention_weights(state['intermediates']))
  assert got[0].shape == (1, 2, 2, 3, 5, 7)  # (calls, layers, B, heads, T, S)
  np.testing.assert_allclose(got[1], got[0], atol=1e-6)


@pytest.mark.parametrize('dtype,tol', [(jnp.float32, 1e-5),
                                       (jnp.bfloat16, 2e-2)])
def test_attend_per_head_is_jax_dot_product_attention(dtype, tol):
  """`attend_per_head` (what `attend` runs on CPUs) computes what
  jax.nn.dot_product_attention computes, forward and backward, in the
  input's dtype."""
  b, t, s, heads, h = 2, 5, 7, 3, 32  # 1/sqrt(32) is no power of two
  ks = jax.random.split(jax.random.key(3), 4)
  q, k, v = (jax.random.normal(kk, (b, n, heads * h), dtype)
             for kk, n in zip(ks, (t, s, s)))
  ct = jax.random.normal(ks[3], (b, t, heads * h))

  def fused(q, k, v):
    split = lambda x: x.reshape(x.shape[0], x.shape[1], heads, h)
    return jax.nn.dot_product_attention(split(q), split(k), split(v)
                                        ).reshape(b, t, heads * h)

  ours = lambda *a: attend_per_head(*a, heads)
  out, ref = ours(q, k, v), fused(q, k, v)
  assert out.dtype == ref.dtype == dtype
  np.testing.assert_allclose(np.asarray(out, np.float32),
                             np.asarray(ref, np.float32), atol=tol)
  loss = lambda f: lambda *a: (f(*a).astype(jnp.float32) * ct).sum()
  g_ours = jax.grad(loss(ours), (0, 1, 2))(q, k, v)
  g_ref = jax.grad(loss(fused), (0, 1, 2))(q, k, v)
  for a, r in zip(g_ours, g_ref):
    scale = float(jnp.abs(r.astype(jnp.float32)).max())
    np.testing.assert_allclose(np.asarray(a, np.float32),
                               np.asarray(r, np.float32), atol=tol * scale)
