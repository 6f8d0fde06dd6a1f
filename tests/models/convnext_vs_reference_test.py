"""jaxlm's ConvNeXt vs transformers' ConvNextModel (PyTorch).

A small ConvNextModel with every parameter re-drawn at random (LayerNorm
scales and biases, convolution and Dense biases, layer scale: so that a
wrong mapping or a missing term shows) is converted with
`jaxlm.convert.convnext`; the pooled descriptor must match `pooler_output`
and the last feature map `last_hidden_state` (NCHW -> NHWC), at two input
sizes, one of them not a multiple of 32. transformers gets the
ImageNet-normalised NCHW float image, jaxlm the raw [0, 255] NHWC one.
"""

from __future__ import annotations

import functools
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

torch = pytest.importorskip('torch')
transformers = pytest.importorskip('transformers')

from jaxlm.checkpoints import flatten  # noqa: E402
from jaxlm.convert.convnext import convert_convnext  # noqa: E402
from jaxlm.errors import ConversionError  # noqa: E402
from jaxlm.models import vit  # noqa: E402
from jaxlm.models.convnext import ConvNeXt  # noqa: E402

pytestmark = pytest.mark.slow

VARIANT = 'tiny:depths=1-1-2-1:dims=16-32-48-64'


def randomise(model, seed: int):
  """Every parameter of `model` re-drawn: matrices and kernels N(0, 1 /
  fan_in), LayerNorm scales 1 + N(0, 0.2), biases N(0, 0.2), layer scale
  U(0.2, 1)."""
  g = torch.Generator().manual_seed(seed)
  with torch.no_grad():
    for name, p in model.named_parameters():
      if p.ndim > 1:
        p.copy_(torch.randn(p.shape, generator=g) * (p[0].numel() ** -0.5))
      elif name.endswith('layer_scale_parameter'):
        p.copy_(0.2 + 0.8 * torch.rand(p.shape, generator=g))
      elif name.endswith('weight'):
        p.copy_(1 + 0.2 * torch.randn(p.shape, generator=g))
      else:
        p.copy_(0.2 * torch.randn(p.shape, generator=g))
  return model


@pytest.fixture(scope='module')
def reference():
  """(transformers model, its state dict as NumPy, converted params)."""
  torch.manual_seed(0)
  cfg = transformers.ConvNextConfig(depths=[1, 1, 2, 1],
                                    hidden_sizes=[16, 32, 48, 64],
                                    layer_scale_init_value=0.5,
                                    layer_norm_eps=1e-6)
  model = randomise(transformers.ConvNextModel(cfg).eval(), 1)
  sd = {k: v.numpy() for k, v in model.state_dict().items()}
  params, variant, style, lines = convert_convnext(sd, 'reference')
  assert (variant, style) == (VARIANT, 'hf')
  assert len(lines) == len(flatten(params))
  return model, sd, params


def images(hw, seed=0):
  return np.random.default_rng(seed).integers(0, 256, (2, *hw, 3),
                                              dtype=np.uint8)


def run_reference(model, img):
  """(pooler_output, last_hidden_state as NHWC) of the uint8 NHWC `img`."""
  x = (img / 255.0 - np.array(vit.IMAGENET_MEAN)) / np.array(vit.IMAGENET_STD)
  with torch.no_grad():
    out = model(torch.from_numpy(x.transpose(0, 3, 1, 2)).float())
  return (out.pooler_output.numpy(),
          out.last_hidden_state.numpy().transpose(0, 2, 3, 1))


@functools.partial(jax.jit, static_argnums=0)
def ours(dtype, params, img):
  """jaxlm's (pooled descriptor, last feature map), in one compilation."""
  return ConvNeXt(VARIANT, dtype=dtype).apply(
      {'params': params}, img, method=lambda m, x: (m(x), m.features(x)))


def close(got, want, what):
  got = np.asarray(got)
  assert got.shape == want.shape, what
  assert got.dtype == np.float32, what
  np.testing.assert_allclose(got, want, atol=1e-4 * max(
      1.0, np.abs(want).max()), err_msg=what)


@pytest.mark.parametrize('hw, grid', [((64, 64), (2, 2)), ((96, 80), (3, 2))])
def test_matches_transformers(reference, hw, grid):
  model, _, params = reference
  img = images(hw)
  pooled, fmap = run_reference(model, img)
  assert fmap.shape == (2, *grid, 64)
  assert np.abs(pooled).max() > 0.5 and np.abs(fmap).max() > 0.5
  got_pooled, got_map = ours(jnp.float32, params, img)
  close(got_pooled, pooled, 'pooled')
  close(got_map, fmap, 'map')


def test_default_final_norm_eps_is_no_difference(reference):
  """transformers' default layer_norm_eps (1e-12) vs jaxlm's 1e-6."""
  model, _, params = reference
  img = images((64, 64), 1)
  model.layernorm.eps = 1e-12
  try:
    pooled, _ = run_reference(model, img)
  finally:
    model.layernorm.eps = 1e-6
  close(ours(jnp.float32, params, img)[0], pooled, 'pooled')


def test_bfloat16_close_to_float32_reference(reference):
  model, _, params = reference
  img = images((64, 64), 2)
  want, _ = run_reference(model, img)
  got = np.asarray(ours(jnp.bfloat16, params, img)[0])
  assert got.dtype == np.float32
  cos = (got * want).sum(-1) / np.linalg.norm(got, axis=-1) / np.linalg.norm(
      want, axis=-1)
  assert cos.min() >= 0.999, cos


def to_original(sd):
  """facebookresearch/ConvNeXt names of a ConvNextModel state dict."""
  subs = [(r'^embeddings\.patch_embeddings\.', 'downsample_layers.0.0.'),
          (r'^embeddings\.layernorm\.', 'downsample_layers.0.1.'),
          (r'^encoder\.stages\.(\d+)\.downsampling_layer\.',
           r'downsample_layers.\1.'),
          (r'^encoder\.stages\.(\d+)\.layers\.', r'stages.\1.'),
          (r'\.layernorm\.', '.norm.'), (r'\.layer_scale_parameter$', '.gamma'),
          (r'^layernorm\.', 'norm.')]
  out = {}
  for k, v in sd.items():
    for a, b in subs:
      k = re.sub(a, b, k)
    out[k] = v
  return out


def test_other_layouts_and_errors(reference):
  _, sd, params = reference
  head = dict(weight=np.zeros((10, 64), np.float32),
              bias=np.zeros(10, np.float32))
  # ConvNextForImageClassification: `convnext.` prefix, classifier dropped.
  cls = {f'convnext.{k}': v for k, v in sd.items()}
  cls.update({f'classifier.{k}': v for k, v in head.items()})
  tree, variant, _, lines = convert_convnext(cls, 'cls')
  assert variant == VARIANT and '(dropped) classifier.weight' in lines
  jax.tree_util.tree_map(np.testing.assert_array_equal, tree, params)
  # facebookresearch/ConvNeXt names, head dropped.
  orig = to_original(sd)
  assert 'stages.2.1.gamma' in orig and 'downsample_layers.3.1.weight' in orig
  orig.update({f'head.{k}': v for k, v in head.items()})
  tree, variant, style, _ = convert_convnext(orig, 'original')
  assert (variant, style) == (VARIANT, 'original')
  jax.tree_util.tree_map(np.testing.assert_array_equal, tree, params)
  # A leftover key either way is an error naming it.
  with pytest.raises(ConversionError, match='encoder.stages.0.layers.0.extra'):
    convert_convnext({**sd, 'encoder.stages.0.layers.0.extra': head['bias']},
                     'extra')
  key = 'encoder.stages.2.layers.1.layer_scale_parameter'
  with pytest.raises(ConversionError, match=re.escape(key)):
    convert_convnext({k: v for k, v in sd.items() if k != key}, 'missing')
  with pytest.raises(ConversionError, match='--variant tiny'):
    convert_convnext(sd, 'variant', variant='tiny')


def test_real_size_tiny_converts():
  """The default (ConvNeXt-T) ConvNextModel's keys and shapes convert onto
  ConvNeXt('tiny') (checked against its abstract params; nothing run)."""
  torch.manual_seed(0)
  model = transformers.ConvNextModel(transformers.ConvNextConfig())
  sd = {k: v.numpy() for k, v in model.state_dict().items()}
  tree, variant, style, _ = convert_convnext(sd, 'tiny')
  assert (variant, style) == ('tiny', 'hf')
  want = jax.eval_shape(lambda: ConvNeXt('tiny').init(
      jax.random.key(0), jnp.zeros((1, 224, 224, 3), jnp.uint8)))['params']
  jax.tree_util.tree_map(lambda a, b: np.testing.assert_equal(
      np.shape(a), b.shape), tree, want)
  assert sum(np.size(a) for a in jax.tree_util.tree_leaves(tree)) == (
      27_820_128)


def test_jaxlm_convert_convnext_initialises_the_3d_query_extractor(
    reference, tmp_path):
  """`jaxlm convert convnext` writes a weights folder that `init.encoder`
  places at the queries3d family's extractor (the family's encoder path)."""
  import safetensors.numpy
  from jaxlm import checkpoints, models
  from jaxlm.convert import convert
  _, sd, params = reference
  src = tmp_path / 'model.safetensors'
  safetensors.numpy.save_file({k: np.ascontiguousarray(v)
                               for k, v in sd.items()}, str(src))
  meta, _ = convert('convnext', src, tmp_path / 'w')
  assert meta['variant'] == VARIANT
  loaded, meta = checkpoints.load_weights(tmp_path / 'w')
  assert meta['kind'] in checkpoints.ENCODER_KINDS
  fam = models.get('queries3d')
  c = fam.complete(dict(name='queries3d', variant=VARIANT))
  path, variant = fam.encoder(c)
  assert variant == VARIANT
  node = models.abstract_variables(models.build(c, (('syn98', 98),)),
                                   64)['params']
  for k in path:
    node = node[k]
  checkpoints.check_tree(node, loaded, what='extractor')
  for k, v in flatten(params).items():
    np.testing.assert_array_equal(flatten(loaded)[k], v)
