"""DINO v1 ViT weights -> jaxlm `models.vit.ViT` params.

Three key layouts hold the same weights:
  original (facebookresearch/dino `vision_transformer.py`, also timm's
  `vit_small_patch16_224`): `cls_token`, `pos_embed`, `patch_embed.proj.*`,
  `blocks.{i}.norm1|attn.qkv|attn.proj|norm2|mlp.fc1|mlp.fc2.*`, `norm.*`;
  Hugging Face `ViTModel` files on the hub (`facebook/dino-vits16`):
  `embeddings.cls_token`, `embeddings.position_embeddings`,
  `embeddings.patch_embeddings.projection`,
  `encoder.layer.{i}.attention.attention.{query,key,value}`,
  `attention.output.dense`, `layernorm_before|after`, `intermediate.dense`,
  `output.dense`, `layernorm`;
  `transformers` >= 5 state dicts (what `ViTModel.state_dict()` returns now):
  the same but `layers.{i}.attention.{q,k,v,o}_proj` and `mlp.fc1|fc2`.
q, k, v are concatenated into jaxlm's fused `qkv`.
The variant (width -> Ti/S/B, patch size, depth) is read off the tensors.
"""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import numpy as np

from jaxlm.convert import ConversionError, Rules, check_tree, conv, linear
from jaxlm.convert import unflatten
from jaxlm.models import vit

SIZE_BY_WIDTH = {192: 'Ti', 384: 'S', 768: 'B'}
# Heads and classifier parts that a ViT encoder does not use.
_IGNORED = re.compile(r'^(head\.|fc_norm\.|pooler\.|classifier\.|'
                      r'mask_token$|embeddings\.mask_token$)')


def strip_prefix(tensors: dict, candidates=('vit.', 'dino.', 'model.',
                                            'encoder_model.')) -> dict:
  for p in candidates:
    if tensors and all(k.startswith(p) for k in tensors):
      return {k[len(p):]: v for k, v in tensors.items()}
  return tensors


def key_style(tensors: dict, where: str) -> str:
  if 'patch_embed.proj.weight' in tensors:
    return 'original'
  if 'embeddings.patch_embeddings.projection.weight' in tensors:
    return 'hf' if any(k.startswith('encoder.layer.') for k in tensors) \
        else 'hf5'
  raise ConversionError(
      f'{where}: not a DINO ViT checkpoint (no patch_embed.proj.weight or '
      f'embeddings.patch_embeddings.projection.weight; first keys: '
      f'{", ".join(list(tensors)[:6])})')


def infer_variant(tensors: dict, style: str) -> str:
  """'S/16' etc. from the patch-embedding shape and the number of blocks."""
  w = tensors['patch_embed.proj.weight' if style == 'original' else
              'embeddings.patch_embeddings.projection.weight']
  width, patch = int(w.shape[0]), int(w.shape[-1])
  pat = {'original': r'^blocks\.(\d+)\.', 'hf': r'^encoder\.layer\.(\d+)\.',
         'hf5': r'^layers\.(\d+)\.'}[style]
  depth = 1 + max(int(m.group(1)) for k in tensors
                  if (m := re.match(pat, k)))
  if width not in SIZE_BY_WIDTH:
    raise ConversionError(f'ViT width {width} is none of '
                          f'{sorted(SIZE_BY_WIDTH)} (Ti, S, B)')
  name = f'{SIZE_BY_WIDTH[width]}/{patch}'
  if depth != vit.decode_variant(name)['depth']:
    name += f':depth={depth}'
  return name


def vit_rules(style: str, depth: int, src: str = '', dst: str = '') -> Rules:
  """Rules from a ViT's keys (under `src`) to jaxlm's ViT (under `dst`)."""
  r = Rules()
  if style == 'original':
    r.add(f'{dst}patch_embed/kernel', f'{src}patch_embed.proj.weight', conv)
    r.add(f'{dst}patch_embed/bias', f'{src}patch_embed.proj.bias')
    r.add(f'{dst}pos_embed', f'{src}pos_embed')
    r.add(f'{dst}cls_token', f'{src}cls_token')
    r.add(f'{dst}norm/scale', f'{src}norm.weight')
    r.add(f'{dst}norm/bias', f'{src}norm.bias')
    for i in range(depth):
      s, d = f'{src}blocks.{i}.', f'{dst}blocks_{i}/'
      for a, b in (('norm1', 'norm1'), ('norm2', 'norm2')):
        r.add(f'{d}{b}/scale', f'{s}{a}.weight')
        r.add(f'{d}{b}/bias', f'{s}{a}.bias')
      for a, b in (('attn.qkv', 'qkv'), ('attn.proj', 'proj'),
                   ('mlp.fc1', 'fc1'), ('mlp.fc2', 'fc2')):
        r.add(f'{d}{b}/kernel', f'{s}{a}.weight', linear)
        r.add(f'{d}{b}/bias', f'{s}{a}.bias')
    return r
  r.add(f'{dst}patch_embed/kernel',
        f'{src}embeddings.patch_embeddings.projection.weight', conv)
  r.add(f'{dst}patch_embed/bias',
        f'{src}embeddings.patch_embeddings.projection.bias')
  r.add(f'{dst}pos_embed', f'{src}embeddings.position_embeddings')
  r.add(f'{dst}cls_token', f'{src}embeddings.cls_token')
  r.add(f'{dst}norm/scale', f'{src}layernorm.weight')
  r.add(f'{dst}norm/bias', f'{src}layernorm.bias')
  names = _HF_NAMES[style]
  for i in range(depth):
    s, d = f'{src}{names["layer"]}.{i}.', f'{dst}blocks_{i}/'
    for a, b in (('layernorm_before', 'norm1'), ('layernorm_after', 'norm2')):
      r.add(f'{d}{b}/scale', f'{s}{a}.weight')
      r.add(f'{d}{b}/bias', f'{s}{a}.bias')
    qkv = [s + names[n] for n in ('q', 'k', 'v')]
    r.add(f'{d}qkv/kernel', [q + '.weight' for q in qkv],
          lambda q, k, v: linear(np.concatenate([q, k, v], axis=0)))
    r.add(f'{d}qkv/bias', [q + '.bias' for q in qkv],
          lambda q, k, v: np.concatenate([q, k, v], axis=0))
    for n, b in (('o', 'proj'), ('fc1', 'fc1'), ('fc2', 'fc2')):
      r.add(f'{d}{b}/kernel', f'{s}{names[n]}.weight', linear)
      r.add(f'{d}{b}/bias', f'{s}{names[n]}.bias')
  return r


_HF_NAMES = {
    'hf': dict(layer='encoder.layer', q='attention.attention.query',
               k='attention.attention.key', v='attention.attention.value',
               o='attention.output.dense', fc1='intermediate.dense',
               fc2='output.dense'),
    'hf5': dict(layer='layers', q='attention.q_proj', k='attention.k_proj',
                v='attention.v_proj', o='attention.o_proj', fc1='mlp.fc1',
                fc2='mlp.fc2'),
}


def vit_abstract(variant: str, pretrain_size: int = 224):
  model = vit.ViT(variant=variant, pretrain_size=pretrain_size)
  p = vit.decode_variant(variant)['patch']
  return jax.eval_shape(lambda: model.init(
      jax.random.PRNGKey(0), jnp.zeros((1, 2 * p, 2 * p, 3), jnp.uint8)))[
          'params']


def pretrain_size(tensors: dict, style: str, patch: int) -> int:
  pos = tensors['pos_embed' if style == 'original'
                else 'embeddings.position_embeddings']
  g = int(round(np.sqrt(pos.shape[1] - 1)))
  if g * g != pos.shape[1] - 1:
    raise ConversionError(f'position embedding of {pos.shape[1] - 1} patches '
                          f'is not a square grid')
  return g * patch


def convert_dino(tensors: dict, where: str, variant: str | None = None):
  """(params tree of models.vit.ViT, variant, pretrain_size, key style)."""
  tensors = strip_prefix(tensors)
  style = key_style(tensors, where)
  found = infer_variant(tensors, style)
  if variant and vit.decode_variant(variant) != vit.decode_variant(found):
    raise ConversionError(f'{where}: --variant {variant} but the checkpoint '
                          f'is a {found}')
  depth = vit.decode_variant(found)['depth']
  size = pretrain_size(tensors, style, vit.decode_variant(found)['patch'])
  rules = vit_rules(style, depth)
  rules.ignore = {k for k in tensors if _IGNORED.match(k)}
  tree = unflatten(rules.apply(tensors, where))
  check_tree(vit_abstract(found, size), tree, where)
  return tree, found, size, style
