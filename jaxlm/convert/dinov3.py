"""DINOv3 ViT weights -> jaxlm `models.vit.ViT` params (the RoPE variant).

DINOv3 replaces the absolute position embedding with 2D rotary embeddings
of q and k (base 100 by default), adds 4 storage ("register") tokens and
LayerScale, and uses LayerNorm eps 1e-5; jaxlm's variant string carries all
of it: 'S/16:layerscale=1:registers=4:rope=100:eps=5'. Key layouts:
  original (facebookresearch/dinov3): `cls_token`, `storage_tokens`,
    `mask_token`, `patch_embed.proj.*`, `blocks.{i}.norm1|attn.qkv|attn.proj|
    ls1.gamma|norm2|mlp.fc1|mlp.fc2|ls2.gamma`, `norm.*`, the buffer
    `rope_embed.periods` (the RoPE base is read off it) and, in newer files,
    `attn.qkv.bias_mask` (applied to the bias);
  Hugging Face `DINOv3ViTModel`: `embeddings.{cls_token,register_tokens,
    mask_token,patch_embeddings}`, `[model.]layer.{i}.norm1|attention.
    {q,k,v,o}_proj|layer_scale1.lambda1|norm2|mlp.up_proj|mlp.down_proj|
    layer_scale2.lambda1`, `norm.*`; k_proj has no bias (zero in jaxlm's
    fused qkv bias, which is the same function).

For TUFA, a v3 encoder has no position embedding to hand the decoder's
cross-attention keys: jaxlm gives them the structure-prompt encoding (Eq.
6.1-6.3) of each patch centre, the encoding the prompts use (see ViT).
"""

from __future__ import annotations

import re

import numpy as np

from jaxlm.checkpoints import check_tree, unflatten
from jaxlm.convert.rules import Rules, conv, linear, mapping_lines
from jaxlm.errors import ConversionError
from jaxlm.convert.dino import SIZE_BY_WIDTH, strip_prefix, vit_abstract
from jaxlm.models import vit

_IGNORED = re.compile(r'^(mask_token|embeddings\.mask_token|head\..*|'
                      r'rope_embed\.periods|pooler\..*|.*\.bias_mask)$')


def _style(tensors: dict, where: str) -> tuple[str, str]:
  """('original', 'blocks') or ('hf', '<prefix>layer')."""
  if 'patch_embed.proj.weight' in tensors:
    if 'pos_embed' in tensors:
      raise ConversionError(f'{where}: has an absolute pos_embed: a DINO v1/'
                            f'v2 checkpoint, not DINOv3 (use `jaxlm convert '
                            f'dino` or `dinov2`)')
    return 'original', 'blocks'
  if 'embeddings.patch_embeddings.weight' in tensors:
    layer = 'model.layer' if any(k.startswith('model.layer.')
                                 for k in tensors) else 'layer'
    return 'hf', layer
  raise ConversionError(
      f'{where}: not a DINOv3 ViT checkpoint (no patch_embed.proj.weight or '
      f'embeddings.patch_embeddings.weight; first keys: '
      f'{", ".join(list(tensors)[:6])})')


def rope_base(tensors: dict, head_dim: int) -> float:
  periods = tensors.get('rope_embed.periods')
  if periods is None:
    return 100.0
  p = np.asarray(periods, np.float64).ravel()
  # periods_j = base ** (4 j / head_dim); float32 periods give ~1e-6 error
  return float((p[1] / p[0]) ** (head_dim / 4))


def convert_dinov3(tensors: dict, where: str, variant: str | None = None):
  """(params tree of models.vit.ViT, variant, key style, mapping lines)."""
  tensors = strip_prefix(tensors, ('dinov3.', 'model.backbone.', 'backbone.'))
  style, layer = _style(tensors, where)
  o = style == 'original'
  pw = tensors['patch_embed.proj.weight' if o else
               'embeddings.patch_embeddings.weight']
  width, patch = int(pw.shape[0]), int(pw.shape[-1])
  if width not in SIZE_BY_WIDTH:
    raise ConversionError(f'{where}: ViT width {width} is none of '
                          f'{sorted(SIZE_BY_WIDTH)} (Ti, S, B)')
  name = f'{SIZE_BY_WIDTH[width]}/{patch}'
  heads = vit.decode_variant(name)['num_heads']
  depth = 1 + max(int(m.group(1)) for k in tensors
                  if (m := re.match(re.escape(layer) + r'\.(\d+)\.', k)))
  reg = tensors.get('storage_tokens' if o else 'embeddings.register_tokens')
  base = rope_base(tensors, width // heads)
  if abs(base - round(base)) > 1e-3 * base:
    raise ConversionError(f'{where}: RoPE base {base:g} (from '
                          f'rope_embed.periods) is not an integer')
  base = round(base)
  found = name + (f':depth={depth}' if depth != 12 else '') + (
      f':layerscale=1:registers={0 if reg is None else reg.shape[1]}'
      f':rope={int(base)}:eps=5')
  if variant and vit.decode_variant(variant) != vit.decode_variant(found):
    raise ConversionError(f'{where}: --variant {variant} but the checkpoint '
                          f'is a {found}')
  r = Rules()
  if o:
    r.add('patch_embed/kernel', 'patch_embed.proj.weight', conv)
    r.add('patch_embed/bias', 'patch_embed.proj.bias')
    r.add('cls_token', 'cls_token')
    if reg is not None:
      r.add('register_tokens', 'storage_tokens')
  else:
    r.add('patch_embed/kernel', 'embeddings.patch_embeddings.weight', conv)
    r.add('patch_embed/bias', 'embeddings.patch_embeddings.bias')
    r.add('cls_token', 'embeddings.cls_token')
    if reg is not None:
      r.add('register_tokens', 'embeddings.register_tokens')
  r.add('norm/scale', 'norm.weight')
  r.add('norm/bias', 'norm.bias')
  for i in range(depth):
    s, d = f'{layer}.{i}.', f'blocks_{i}/'
    for n in ('norm1', 'norm2'):
      r.add(f'{d}{n}/scale', f'{s}{n}.weight')
      r.add(f'{d}{n}/bias', f'{s}{n}.bias')
    if o:
      r.add(f'{d}qkv/kernel', f'{s}attn.qkv.weight', linear)
      mask = tensors.get(f'{s}attn.qkv.bias_mask')
      r.add(f'{d}qkv/bias', f'{s}attn.qkv.bias',
            lambda b, mask=mask: b if mask is None else b * mask)
      pairs = (('attn.proj', 'proj'), ('mlp.fc1', 'fc1'), ('mlp.fc2', 'fc2'))
      ls = ('ls1.gamma', 'ls2.gamma')
    else:
      qkv = [f'{s}attention.{n}_proj' for n in 'qkv']
      r.add(f'{d}qkv/kernel', [q + '.weight' for q in qkv],
            lambda q, k, v: linear(np.concatenate([q, k, v], axis=0)))
      r.add(f'{d}qkv/bias', [qkv[0] + '.bias', qkv[2] + '.bias'],
            lambda bq, bv: np.concatenate([bq, np.zeros_like(bq), bv]))
      pairs = (('attention.o_proj', 'proj'), ('mlp.up_proj', 'fc1'),
               ('mlp.down_proj', 'fc2'))
      ls = ('layer_scale1.lambda1', 'layer_scale2.lambda1')
    for a, b in pairs:
      r.add(f'{d}{b}/kernel', f'{s}{a}.weight', linear)
      r.add(f'{d}{b}/bias', f'{s}{a}.bias')
    r.add(f'{d}ls1', f'{s}{ls[0]}')
    r.add(f'{d}ls2', f'{s}{ls[1]}')
  r.ignore = {k for k in tensors if _IGNORED.match(k)}
  tree = unflatten(r.apply(tensors, where))
  check_tree(vit_abstract(found), tree, where)
  return tree, found, style, mapping_lines(r.applied, tree, r.ignore)
