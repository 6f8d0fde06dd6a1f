"""ConvNeXt weights -> jaxlm `models.convnext.ConvNeXt` params.

Two key layouts of the same weights:
  hf: Hugging Face `ConvNextModel` (`embeddings.patch_embeddings`,
    `embeddings.layernorm`, `encoder.stages.{i}.downsampling_layer.{0,1}`
    (LayerNorm, 2x2 convolution; none in stage 0), `encoder.stages.{i}.
    layers.{j}.dwconv|layernorm|pwconv1|pwconv2|layer_scale_parameter`,
    `layernorm`), also under the `convnext.` prefix of
    `ConvNextForImageClassification`, whose `classifier.*` is dropped;
  original: facebookresearch/ConvNeXt (`downsample_layers.0.{0,1}` the stem
    convolution and LayerNorm, `downsample_layers.{i}.{0,1}` LayerNorm and
    convolution, `stages.{i}.{j}.dwconv|norm|pwconv1|pwconv2|gamma`, `norm`;
    `head.*` dropped).
The variant (depths, dims) is read off the tensors. A checkpoint without
layer scale (transformers' `layer_scale_init_value=0`) has no gamma and is
refused by name. The epsilon of transformers' final LayerNorm is a config
setting (default 1e-12) the weights do not carry; jaxlm uses the original's
1e-6, which changes f by about 5e-7 / (variance of the pooled features)
relative: nothing for trained models.
"""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp

from jaxlm.checkpoints import check_tree, unflatten
from jaxlm.convert.rules import Rules, conv, linear, mapping_lines
from jaxlm.errors import ConversionError
from jaxlm.models import convnext

_IGNORED = re.compile(r'^(classifier|head)\.')

# Source module names of each layout ({i}: stage, {j}: block).
_NAMES = {
    'hf': dict(stem_conv='embeddings.patch_embeddings',
               stem_norm='embeddings.layernorm',
               downsample_norm='encoder.stages.{i}.downsampling_layer.0',
               downsample_conv='encoder.stages.{i}.downsampling_layer.1',
               block='encoder.stages.{i}.layers.{j}', norm='layernorm',
               gamma='layer_scale_parameter', final_norm='layernorm'),
    'original': dict(stem_conv='downsample_layers.0.0',
                     stem_norm='downsample_layers.0.1',
                     downsample_norm='downsample_layers.{i}.0',
                     downsample_conv='downsample_layers.{i}.1',
                     block='stages.{i}.{j}', norm='norm', gamma='gamma',
                     final_norm='norm'),
}


def key_style(tensors: dict, where: str) -> str:
  """'hf' or 'original' (see the module docstring)."""
  for style, names in _NAMES.items():
    if f'{names["stem_conv"]}.weight' in tensors:
      return style
  raise ConversionError(
      f'{where}: not a ConvNeXt checkpoint (no embeddings.patch_embeddings.'
      f'weight or downsample_layers.0.0.weight; first keys: '
      f'{", ".join(list(tensors)[:6])})')


def infer_variant(tensors: dict, style: str, where: str) -> str:
  """The jaxlm variant string: 'tiny', or e.g. 'tiny:depths=1-1-2-1:dims=
  16-32-48-64' (blocks counted from their depthwise convolutions)."""
  depths, dims = [], []
  while True:
    block = re.escape(_NAMES[style]['block'].format(i=len(depths), j='@'))
    pattern = block.replace('@', r'(\d+)') + r'\.dwconv\.weight'
    found = {int(m.group(1)): v.shape[0] for k, v in tensors.items()
             if (m := re.fullmatch(pattern, k))}
    if not found:
      break
    depths.append(max(found) + 1)
    dims.append(int(found[max(found)]))
  if not depths:
    raise ConversionError(f'{where}: ConvNeXt checkpoint without blocks (no '
                          f'{_NAMES[style]["block"].format(i=0, j=0)}.dwconv.'
                          f'weight)')
  cfg = dict(depths=tuple(depths), dims=tuple(dims))
  for name in convnext.VARIANTS:
    if convnext.decode_variant(name) == cfg:
      return name
  default = convnext.decode_variant('tiny')
  return 'tiny' + ''.join(f':{k}={"-".join(map(str, v))}'
                          for k, v in cfg.items() if v != default[k])


def convnext_rules(style: str, variant: str) -> Rules:
  """Rules from a ConvNeXt's keys in `style` to jaxlm's ConvNeXt."""
  n, r = _NAMES[style], Rules()

  def norm(dst, src):
    r.add(f'{dst}/scale', f'{src}.weight')
    r.add(f'{dst}/bias', f'{src}.bias')

  def layer(dst, src, fn):
    r.add(f'{dst}/kernel', f'{src}.weight', fn)
    r.add(f'{dst}/bias', f'{src}.bias')

  layer('stem_conv', n['stem_conv'], conv)
  norm('stem_norm', n['stem_norm'])
  for i, depth in enumerate(convnext.decode_variant(variant)['depths']):
    if i:
      norm(f'stages_{i}/downsample_norm', n['downsample_norm'].format(i=i))
      layer(f'stages_{i}/downsample_conv', n['downsample_conv'].format(i=i),
            conv)
    for j in range(depth):
      s, d = n['block'].format(i=i, j=j), f'stages_{i}/block_{j}'
      layer(f'{d}/dwconv', f'{s}.dwconv', conv)
      norm(f'{d}/norm', f'{s}.{n["norm"]}')
      layer(f'{d}/pwconv1', f'{s}.pwconv1', linear)
      layer(f'{d}/pwconv2', f'{s}.pwconv2', linear)
      r.add(f'{d}/gamma', f'{s}.{n["gamma"]}')
  norm('final_norm', n['final_norm'])
  return r


def convnext_abstract(variant: str):
  """Shapes of ConvNeXt(variant)'s params (nothing is computed)."""
  side = 2 ** (len(convnext.decode_variant(variant)['dims']) + 1)
  return jax.eval_shape(lambda: convnext.ConvNeXt(variant).init(
      jax.random.key(0), jnp.zeros((1, side, side, 3), jnp.uint8)))['params']


def convert_convnext(tensors: dict, where: str, variant: str | None = None):
  """(params tree of models.convnext.ConvNeXt, variant, key style, mapping
  lines)."""
  if any(k.startswith('convnext.') for k in tensors):
    tensors = {k.removeprefix('convnext.'): v for k, v in tensors.items()}
  style = key_style(tensors, where)
  found = infer_variant(tensors, style, where)
  if variant and (convnext.decode_variant(variant)
                  != convnext.decode_variant(found)):
    raise ConversionError(f'{where}: --variant {variant} but the checkpoint '
                          f'is a {found}')
  rules = convnext_rules(style, found)
  rules.ignore = {k for k in tensors if _IGNORED.match(k)}
  tree = unflatten(rules.apply(tensors, where))
  check_tree(convnext_abstract(found), tree, where)
  return tree, found, style, mapping_lines(rules.applied, tree, rules.ignore)
