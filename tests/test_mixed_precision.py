"""bf16 mixed precision for every family (`model.dtype = 'bfloat16'`):
float32 parameters and gradients, bf16 matrix multiplies and convolutions.

Checked on the traced training computation (no compile, no compute): the
jaxpr of the loss gradient of each registered family at its default
settings, walked into every sub-jaxpr. A family that forgets to pass its
dtype to a layer shows up as float32 dot products here."""

import jax
import jax.numpy as jnp
import pytest

from jaxlm import layouts, models

SIZE = 64
# settings a family needs at a 64 px input (everything else: its defaults)
SMALL = {
    'lensmaster': dict(backbone_input=128, stages=2,
                       variant=('S/16:depth=2:layerscale=1:registers=4:'
                                'rope=100:eps=5')),
    'infinite3d': dict(crop_size=64, stn_size=64),
    'slpt': dict(num_layers=2),
    'dslpt': dict(num_layers=2, variant='hrnet_lite'),
}
MATMULS = ('dot_general', 'conv_general_dilated')


def _sub_jaxprs(eqn):
  for v in eqn.params.values():
    for x in (v if isinstance(v, (list, tuple)) else [v]):
      if isinstance(x, jax.extend.core.ClosedJaxpr):
        yield x.jaxpr
      elif isinstance(x, jax.extend.core.Jaxpr):
        yield x


def _matmul_dtypes(jaxpr, out):
  """[(primitive, operand dtypes)] of every product in `jaxpr`."""
  for eqn in jaxpr.eqns:
    if eqn.primitive.name in MATMULS:
      out.append((eqn.primitive.name,
                  tuple(str(v.aval.dtype) for v in eqn.invars)))
    for sub in _sub_jaxprs(eqn):
      _matmul_dtypes(sub, out)
  return out


def _traced(name, dtype):
  family = models.get(name)
  cfg = family.default_config()
  cfg.update(dict(SMALL.get(name, {}), dtype=dtype))
  model = models.build(cfg, (('syn98', 98),))
  n = 98
  variables = jax.eval_shape(lambda: models.init_variables(
      model, jax.random.key(0), SIZE, n))
  loss_of = family.loss(model, [layouts.get('syn98')])
  batch = dict(image=jnp.zeros((2, SIZE, SIZE, 3), jnp.uint8),
               point_index=jnp.tile(jnp.arange(n, dtype=jnp.int32), (2, 1)),
               target=jnp.full((2, n, 2), 0.5), weight=jnp.ones((2, n)))
  mutable = ['batch_stats'] if 'batch_stats' in variables else False

  def loss(params, variables):
    out = model.apply(dict(variables, params=params), batch['image'],
                      point_index=batch['point_index'], train=True,
                      rngs={'dropout': jax.random.key(1)}, mutable=mutable)
    return loss_of(out[0] if mutable else out, batch)[0]

  grad = lambda v: jax.grad(loss)(v['params'], v)
  return (variables['params'], jax.eval_shape(grad, variables),
          jax.make_jaxpr(grad)(variables).jaxpr)


@pytest.mark.parametrize('name', sorted(models.FAMILIES))
def test_bf16_compute_with_float32_parameters(name):
  params, grads, jaxpr = _traced(name, 'bfloat16')
  for tree in (params, grads):
    assert {str(x.dtype) for x in jax.tree_util.tree_leaves(tree)} == {
        'float32'}
  kinds = _matmul_dtypes(jaxpr, [])
  assert kinds, 'no matrix multiply traced'
  # every convolution, forward and backward, in bf16
  convs = [d for p, d in kinds if p == 'conv_general_dilated']
  assert all(d == ('bfloat16', 'bfloat16') for d in convs), (name, convs)
  # products with no bf16 operand at all: only the float32 heads and
  # coordinate maths (2-8% of the products today); a layer that ignores
  # the dtype adds its forward and backward products here
  f32 = [d for _, d in kinds if 'bfloat16' not in d]
  assert len(f32) <= 0.1 * len(kinds), (name, len(f32), len(kinds))


def test_float32_traces_no_bf16_product():
  """The control: the counting above sees float32 where it is float32."""
  _, _, jaxpr = _traced('tufa', 'float32')
  kinds = _matmul_dtypes(jaxpr, [])
  assert kinds and not any('bfloat16' in d for _, d in kinds)
