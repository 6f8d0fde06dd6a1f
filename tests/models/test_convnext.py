"""ConvNeXt: variants, shapes, parameter counts, dtypes, stochastic depth
(numbers vs transformers in convnext_vs_reference_test.py)."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlm.models import convnext
from jaxlm.models.convnext import ConvNeXt

DEMO = 'tiny:depths=1-1-1-1:dims=8-16-24-32'
# ConvNeXt-T with its 1000-class head has 28,589,128 parameters (Liu et al.
# 2022, Table 1: 28M); without the head (768 * 1000 + 1000) the backbone,
# final LayerNorm included, has:
TINY_BACKBONE = 28_589_128 - 769_000


@functools.lru_cache
def abstract_params(variant):
  """Shapes of ConvNeXt(variant)'s params (nothing is computed)."""
  return jax.eval_shape(lambda: ConvNeXt(variant).init(
      jax.random.key(0), jnp.zeros((1, 32, 32, 3), jnp.uint8)))['params']


def abstract_outputs(variant, hw):
  """Shapes of (pooled, last map) of `variant` on a (1, *hw) input."""
  img = jax.ShapeDtypeStruct((1, *hw, 3), jnp.uint8)
  return jax.eval_shape(lambda p, x: ConvNeXt(variant).apply(
      {'params': p}, x, method=lambda m, x: (m(x), m.features(x))),
                        abstract_params(variant), img)


def count(params):
  return sum(int(np.prod(a.shape)) for a in jax.tree_util.tree_leaves(params))


def test_variants():
  assert convnext.decode_variant('tiny') == dict(depths=(3, 3, 9, 3),
                                                 dims=(96, 192, 384, 768))
  assert convnext.decode_variant('small')['depths'] == (3, 3, 27, 3)
  assert convnext.decode_variant('base')['dims'] == (128, 256, 512, 1024)
  assert convnext.decode_variant(
      'tiny:depths=1-1-2-1:dims=32-64-128-256') == dict(
          depths=(1, 1, 2, 1), dims=(32, 64, 128, 256))
  assert convnext.decode_variant('base:depths=1-1-1-1')['dims'] == (
      128, 256, 512, 1024)


@pytest.mark.parametrize('variant', ['huge', 'tiny/16', 'Tiny', 'tiny:'])
def test_unknown_variant_is_named(variant):
  with pytest.raises(ValueError, match='unknown ConvNeXt variant') as e:
    convnext.decode_variant(variant)
  assert repr(variant) in str(e.value) and 'tiny, small, base' in str(e.value)
  with pytest.raises(ValueError, match=repr(variant)):
    abstract_params(variant)


def test_bad_overrides():
  with pytest.raises(ValueError, match="override 'width'"):
    convnext.decode_variant('tiny:width=3')
  with pytest.raises(ValueError, match='2 depths but 4 dims'):
    convnext.decode_variant('tiny:depths=1-1')


@pytest.mark.parametrize('variant, width', [('tiny', 768), ('small', 768),
                                            ('base', 1024)])
def test_shapes(variant, width):
  for hw, grid in (((224, 224), (7, 7)), ((96, 96), (3, 3)),
                   ((100, 70), (3, 2))):  # floored, as PyTorch
    pooled, fmap = abstract_outputs(variant, hw)
    assert pooled.shape == (1, width) and pooled.dtype == jnp.float32, hw
    assert fmap.shape == (1, *grid, width) and fmap.dtype == jnp.float32, hw


def test_parameter_counts():
  params = abstract_params('tiny')
  assert count(params) == TINY_BACKBONE == 27_820_128
  # Published with the 1000-class head: S 50.2M, B 88.6M.
  assert count(abstract_params('small')) + 769_000 == 50_223_688
  assert count(abstract_params('base')) + 1_025_000 == 88_591_464
  names = set(params) - {f'stages_{i}' for i in range(4)}
  assert names == {'stem_conv', 'stem_norm', 'final_norm'}
  assert set(params['stages_1']) == {'downsample_norm', 'downsample_conv',
                                     'block_0', 'block_1', 'block_2'}
  assert set(params['stages_0']['block_0']) == {'dwconv', 'norm', 'pwconv1',
                                                'pwconv2', 'gamma'}
  assert params['stages_0']['block_0']['dwconv']['kernel'].shape == (
      7, 7, 1, 96)


@pytest.mark.slow  # importing transformers takes seconds
def test_parameter_count_matches_transformers():
  torch = pytest.importorskip('torch')
  transformers = pytest.importorskip('transformers')
  with torch.device('meta'):  # shapes only
    model = transformers.ConvNextModel(transformers.ConvNextConfig())
  assert sum(p.numel() for p in model.parameters()) == TINY_BACKBONE


def test_run_and_stochastic_depth():
  """train=True drops blocks per sample, drawing from the 'dropout' rng."""
  img = np.random.default_rng(0).integers(0, 256, (2, 32, 32, 3), np.uint8)
  m = ConvNeXt(DEMO, drop_path=0.5)
  rng = np.random.default_rng(1)  # (jit-compiling init takes seconds)
  params = jax.tree_util.tree_map_with_path(
      lambda p, s: np.ones(s.shape, np.float32) if 'gamma' in str(p)
      else rng.normal(0, 0.2, s.shape).astype(np.float32),
      abstract_params(DEMO))
  assert all(a.dtype == jnp.float32 for a in jax.tree_util.tree_leaves(
      abstract_params(DEMO)))

  @jax.jit
  def run(params, x, key):
    v = {'params': params}
    return m.apply(v, x), m.apply(v, x, train=True, rngs={'dropout': key})

  ev, train = run(params, img, jax.random.key(1))
  assert ev.shape == (2, 32) and ev.dtype == jnp.float32
  assert np.abs(np.asarray(train) - np.asarray(ev)).max() > 1e-3
  with pytest.raises(Exception, match='dropout'):
    jax.eval_shape(lambda p: m.apply({'params': p}, img, train=True), params)
