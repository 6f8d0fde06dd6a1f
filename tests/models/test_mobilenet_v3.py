"""MobileNetV3 (Howard et al., ICCV 2019): parameter counts against
torchvision's published figures, the shapes after every block against the
paper's Tables 1 and 2, output shapes, BatchNorm, padding, activations.

No independent implementation is importable here (no torchvision, and
transformers has no MobileNetV3), so these are structural checks; the large
sizes go through jax.eval_shape (no real initialisation or forward pass).
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlm import models
from jaxlm.models import mobilenet_v3 as mb
from jaxlm.models.mobilenet_v3 import MobileNetV3

# The paper's tables, typed again from the paper (not from mobilenet_v3.py):
# input resolution, input channels, kernel, expanded size, #out, SE, NL, s
# of every bneck row.
PAPER_TABLE_1 = (  # MobileNetV3-Large
    (112, 16, 3, 16, 16, False, 'RE', 1),
    (112, 16, 3, 64, 24, False, 'RE', 2),
    (56, 24, 3, 72, 24, False, 'RE', 1),
    (56, 24, 5, 72, 40, True, 'RE', 2),
    (28, 40, 5, 120, 40, True, 'RE', 1),
    (28, 40, 5, 120, 40, True, 'RE', 1),
    (28, 40, 3, 240, 80, False, 'HS', 2),
    (14, 80, 3, 200, 80, False, 'HS', 1),
    (14, 80, 3, 184, 80, False, 'HS', 1),
    (14, 80, 3, 184, 80, False, 'HS', 1),
    (14, 80, 3, 480, 112, True, 'HS', 1),
    (14, 112, 3, 672, 112, True, 'HS', 1),
    (14, 112, 5, 672, 160, True, 'HS', 2),
    (7, 160, 5, 960, 160, True, 'HS', 1),
    (7, 160, 5, 960, 160, True, 'HS', 1),
)
PAPER_TABLE_2 = (  # MobileNetV3-Small
    (112, 16, 3, 16, 16, True, 'RE', 2),
    (56, 16, 3, 72, 24, False, 'RE', 2),
    (28, 24, 3, 88, 24, False, 'RE', 1),
    (28, 24, 5, 96, 40, True, 'HS', 2),
    (14, 40, 5, 240, 40, True, 'HS', 1),
    (14, 40, 5, 240, 40, True, 'HS', 1),
    (14, 40, 5, 120, 48, True, 'HS', 1),
    (14, 48, 5, 144, 48, True, 'HS', 1),
    (14, 48, 5, 288, 96, True, 'HS', 2),
    (7, 96, 5, 576, 96, True, 'HS', 1),
    (7, 96, 5, 576, 96, True, 'HS', 1),
)
PAPER = {
    # table, last 1x1 conv channels, head (descriptor) channels
    'large': (PAPER_TABLE_1, 960, 1280),
    'small': (PAPER_TABLE_2, 576, 1024),
}
# torchvision's documented parameter counts (1000 classes)
TORCHVISION_PARAMS = {'large': 5_483_032, 'small': 2_542_856}
# the paper's multiply-adds at 224x224, width 1.0 (Tables 3 and 4)
PAPER_MADDS = {'large': 219e6, 'small': 56e6}


@functools.lru_cache(maxsize=None)
def _abstract_variables(variant, num_classes=0, dtype=jnp.float32):
  """Shapes of the variables (the same for every input size)."""
  model = MobileNetV3(variant, num_classes=num_classes, dtype=dtype)
  x = jax.ShapeDtypeStruct((1, 32, 32, 3), jnp.uint8)
  return jax.eval_shape(model.init, jax.random.key(0), x)


@functools.lru_cache(maxsize=None)
def _abstract(variant, size=224, num_classes=0, dtype=jnp.float32):
  """Shapes of the variables, of the outputs and of the intermediates of
  every submodule for a (1, size, size, 3) input, without running
  anything."""
  model = MobileNetV3(variant, num_classes=num_classes, dtype=dtype)
  x = jax.ShapeDtypeStruct((1, size, size, 3), jnp.uint8)
  v = _abstract_variables(variant, num_classes, dtype)
  (out, fmap), inter = jax.eval_shape(
      functools.partial(model.apply, return_feature_map=True,
                        capture_intermediates=True, mutable=['intermediates']),
      v, x)
  return v, out, fmap, inter['intermediates']


def _images(size, b=2, seed=0):
  return np.random.default_rng(seed).integers(0, 256, (b, size, size, 3),
                                              dtype=np.uint8)


@pytest.mark.parametrize('variant', ['large', 'small'])
def test_parameter_count_with_1000_classes_is_torchvisions(variant):
  v, out, _, _ = _abstract(variant, num_classes=1000)
  assert set(v) == {'params', 'batch_stats'}
  # BatchNorm running statistics are torch buffers, not parameters
  assert models.num_params(v['params']) == TORCHVISION_PARAMS[variant]
  _, last, head = PAPER[variant]
  p = v['params']
  # torchvision's classifier: Linear(960, 1280) + Hardswish + Dropout
  # + Linear(1280, 1000)
  assert p['head']['kernel'].shape == (last, head)
  assert p['classifier']['kernel'].shape == (head, 1000)
  assert out.shape == (1, 1000) and out.dtype == jnp.float32


def test_parameter_names_and_kernels():
  v, _, _, _ = _abstract('large')
  p, stats = v['params'], v['batch_stats']
  assert 'classifier' not in p  # num_classes=0: descriptor only
  assert set(p) == ({'stem', 'last_conv', 'head'}
                    | {f'block_{i}' for i in range(15)})
  assert p['stem']['conv']['kernel'].shape == (3, 3, 3, 16)
  assert 'bias' not in p['stem']['conv']  # BN follows: no conv bias
  assert set(p['stem']['bn']) == {'scale', 'bias'}
  assert set(stats['stem']['bn']) == {'mean', 'var'}
  # block_0: expanded == input channels, so no expand conv
  assert set(p['block_0']) == {'depthwise', 'project'}
  assert set(p['block_3']) == {'expand', 'depthwise', 'se', 'project'}
  assert p['block_3']['depthwise']['conv']['kernel'].shape == (5, 5, 1, 72)
  se = p['block_3']['se']
  assert se['fc1']['kernel'].shape == (1, 1, 72, 24)  # make_divisible(18)
  assert se['fc2']['kernel'].shape == (1, 1, 24, 72)
  assert set(se['fc1']) == {'kernel', 'bias'}
  assert p['last_conv']['conv']['kernel'].shape == (1, 1, 160, 960)
  for leaf in jax.tree_util.tree_leaves(p):
    assert leaf.dtype == jnp.float32


@pytest.mark.parametrize('variant', ['large', 'small'])
def test_blocks_follow_the_papers_table(variant):
  """Each block's output resolution and channels at 224x224 are the next
  row's input of the paper's table; kernels, expanded sizes and SE from the
  parameters; the strides and NL columns against the module's table."""
  table, last, head = PAPER[variant]
  v, out, fmap, inter = _abstract(variant)
  p = v['params']
  assert inter['stem']['__call__'][0].shape == (1, 112, 112, 16)
  assert len(mb.BLOCKS[variant]) == len(table)
  next_inputs = [(r[0], r[1]) for r in table[1:]] + [(7, table[-1][4])]
  for i, (row, (res, ch)) in enumerate(zip(table, next_inputs)):
    _, cin, k, exp, cout, se, nl, s = row
    assert cout == ch
    block = p[f'block_{i}']
    assert inter[f'block_{i}']['__call__'][0].shape == (1, res, res, cout), i
    assert block['depthwise']['conv']['kernel'].shape == (k, k, 1, exp), i
    assert block['project']['conv']['kernel'].shape == (1, 1, exp, cout), i
    if exp != cin:
      assert block['expand']['conv']['kernel'].shape == (1, 1, cin, exp), i
    else:
      assert 'expand' not in block
    assert ('se' in block) == se, i
    if se:  # a quarter of the expanded size, rounded to a multiple of 8
      squeeze = block['se']['fc1']['kernel'].shape[-1]
      assert squeeze % 8 == 0 and abs(squeeze - exp / 4) < 8, i
    assert mb.BLOCKS[variant][i] == (cin, k, exp, cout, se, nl, s), i
  assert fmap.shape == (1, 7, 7, last)
  assert out.shape == (1, head)


def test_stride_two_blocks_halve_224_down_to_7():
  """Hand-computed: 224 -> stem 112 -> 56, 28, 14, 7 after the stride-2
  blocks (Large: blocks 1, 3, 6, 12; Small: 0, 1, 3, 8)."""
  for variant, strided in (('large', (1, 3, 6, 12)), ('small', (0, 1, 3, 8))):
    _, _, _, inter = _abstract(variant)
    sizes = [inter[f'block_{i}']['__call__'][0].shape[1] for i in strided]
    assert sizes == [56, 28, 14, 7], variant
    channels = [inter[f'block_{i}']['__call__'][0].shape[-1]
                for i in strided]
    assert channels == ([24, 40, 80, 160] if variant == 'large'
                        else [16, 24, 40, 96]), variant


@pytest.mark.parametrize('variant', ['large', 'small'])
@pytest.mark.parametrize('size', [224, 96, 100])
def test_output_shapes_and_stride_32(variant, size):
  _, last, head = PAPER[variant]
  _, out, fmap, _ = _abstract(variant, size)
  h = -(-size // 32)  # 7, 3, and ceil(100 / 32) = 4
  assert fmap.shape == (1, h, h, last)
  assert out.shape == (1, head)
  assert out.dtype == fmap.dtype == jnp.float32


def test_bfloat16_compute_keeps_float32_params_and_outputs():
  v, out, fmap, inter = _abstract('small', 96, dtype=jnp.bfloat16)
  assert all(x.dtype == jnp.float32
             for x in jax.tree_util.tree_leaves(v['params']))
  assert out.dtype == fmap.dtype == jnp.float32
  assert inter['block_3']['__call__'][0].dtype == jnp.bfloat16


@pytest.mark.parametrize('variant', ['large', 'small'])
def test_multiply_adds_near_the_papers(variant):
  """XLA's flop count (2 per multiply-add, plus element-wise work) of the
  224x224 network against the paper's 219M (Large) / 56M (Small) MAdds,
  loosely."""
  model = MobileNetV3(variant)
  x = jax.ShapeDtypeStruct((1, 224, 224, 3), jnp.float32)
  cost = jax.jit(model.apply).lower(_abstract_variables(variant),
                                    x).cost_analysis()
  if isinstance(cost, (list, tuple)):
    cost = cost[0] if cost else None
  if not cost or 'flops' not in cost:
    pytest.skip('no flop count from this XLA backend')
  assert 0.9 < cost['flops'] / 2 / PAPER_MADDS[variant] < 1.25


def _numpy_variables(abstract, seed=0):
  """Variables of the shapes of `abstract` drawn on the host as the module's
  initialisers do (a real jitted init of the whole network compiles for
  ~15 s on this CPU; the initialisers are checked on single layers below):
  conv kernels N(0, 2 / fan_out), Dense kernels N(0, 0.01^2), biases and
  running means 0, BatchNorm scales and running variances 1."""
  rng = np.random.default_rng(seed)

  def draw(path, leaf):
    name, shape = path[-1].key, leaf.shape
    if name == 'kernel' and len(shape) == 4:
      std = (2.0 / (np.prod(shape[:-2]) * shape[-1]))**0.5
    elif name == 'kernel':
      std = 0.01
    else:
      return np.full(shape, 1.0 if name in ('scale', 'var') else 0.0,
                     np.float32)
    return (rng.standard_normal(shape) * std).astype(np.float32)

  return jax.tree_util.tree_map_with_path(draw, abstract)


def test_forward_train_updates_batch_stats_and_eval_uses_them():
  model = MobileNetV3('small')
  x = _images(64)
  v = _numpy_variables(_abstract_variables('small'))
  train = jax.jit(lambda v, x: model.apply(v, x, train=True,
                                           mutable=['batch_stats']))
  out, updated = train(v, x)
  assert out.shape == (2, 1024) and np.isfinite(out).all()
  after = updated['batch_stats']
  mean0 = v['batch_stats']['block_3']['depthwise']['bn']['mean']
  mean1 = after['block_3']['depthwise']['bn']['mean']
  assert np.all(mean0 == 0) and not np.allclose(mean1, 0)
  # torch's momentum 0.01: from 0, one step gives 0.01 m of the batch mean
  # m, a second on the same batch 0.99 * 0.01 m + 0.01 m = 1.99 x that
  v1 = {'params': v['params'], 'batch_stats': after}
  _, twice = train(v1, x)
  mean2 = twice['batch_stats']['block_3']['depthwise']['bn']['mean']
  np.testing.assert_allclose(mean2, 1.99 * mean1, rtol=1e-4, atol=1e-7)
  # eval: running statistics, so every image's output is its own
  evaluate = jax.jit(lambda v, x: model.apply(v, x, return_feature_map=True))
  y, fmap = evaluate(v1, x)
  assert fmap.shape == (2, 2, 2, 576) and np.isfinite(y).all()
  y_rev, _ = evaluate(v1, x[::-1])
  np.testing.assert_allclose(y_rev[::-1], y, rtol=1e-4, atol=0)


def test_initialisers_are_torchvisions():
  """Kaiming-normal fan-out convolutions (depthwise: fan-out k * k * C, as
  torch counts it), BatchNorm 1 / 0, Dense N(0, 0.01)."""
  x = jnp.ones((1, 8, 8, 64))
  dw = jax.jit(mb.ConvBN(64, 5, groups=64).init)(jax.random.key(0),
                                                 x)['params']
  kernel = dw['conv']['kernel']
  assert kernel.shape == (5, 5, 1, 64)
  assert abs(float(kernel.std()) / (2 / (25 * 64))**0.5 - 1) < 0.1
  assert np.all(dw['bn']['scale'] == 1) and np.all(dw['bn']['bias'] == 0)
  pw = jax.jit(mb.ConvBN(256).init)(jax.random.key(1), x)
  pw = pw['params']['conv']['kernel']
  assert abs(float(pw.std()) / (2 / 256)**0.5 - 1) < 0.1
  dense = mb.dense_init(jax.random.key(2), (256, 256))
  assert abs(float(dense.std()) / 0.01 - 1) < 0.05


def test_unknown_variant_names_the_known_ones():
  with pytest.raises(ValueError, match="'medium'.*large, small"):
    MobileNetV3('medium').init(jax.random.key(0), _images(32, 1))


def test_make_divisible_and_width():
  # SE squeeze widths of torchvision's tables: expanded // 4 rounded
  assert [mb.make_divisible(e // 4) for e in (16, 72, 96, 120, 144, 240)] \
      == [8, 24, 24, 32, 40, 64]
  assert [mb.make_divisible(e // 4) for e in (288, 480, 576, 672, 960)] \
      == [72, 120, 144, 168, 240]
  assert mb.make_divisible(16 * 0.75) == 16  # never below 8, nearest
  assert mb.make_divisible(40 * 0.75) == 32  # 30 -> 32
  table = mb.block_table('large', 0.5)
  assert all(c % 8 == 0 for row in table for c in (row[0], row[2], row[3]))
  v = jax.eval_shape(MobileNetV3('large', width=0.5).init, jax.random.key(0),
                     jax.ShapeDtypeStruct((1, 64, 64, 3), jnp.uint8))
  assert v['params']['head']['kernel'].shape == (480, 640)


def test_activations_and_symmetric_padding():
  x = jnp.asarray([-4.0, -3.0, -1.0, 0.0, 1.0, 3.0, 4.0])
  np.testing.assert_allclose(mb.hard_swish(x),
                             [0, 0, -1 / 3, 0, 2 / 3, 3, 4], atol=1e-6)
  np.testing.assert_allclose(mb.hard_sigmoid(x),
                             [0, 0, 1 / 3, 0.5, 2 / 3, 1, 1], atol=1e-6)
  # a 3x3 stride-2 conv reading only its top-left tap: torch pads one pixel
  # on every side, so output (0, 0) reads the padding and (1, 1) reads
  # input (1, 1); flax 'SAME' would pad only the bottom/right of an even
  # input and read input (0, 0) first
  conv = mb._conv(1, 3, 2)
  kernel = jnp.zeros((3, 3, 1, 1)).at[0, 0, 0, 0].set(1.0)
  image = jnp.arange(1.0, 17.0).reshape(1, 4, 4, 1)
  y = conv.apply({'params': {'kernel': kernel}}, image)
  assert y.shape == (1, 2, 2, 1)
  np.testing.assert_allclose(y[0, :, :, 0], [[0, 0], [0, 6]])
