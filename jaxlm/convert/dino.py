"""DINO v1 and DINOv2 ViT weights -> jaxlm `models.vit.ViT` params.

One ViT family, several key layouts of the same weights:
  original: facebookresearch/dino `vision_transformer.py` (also timm's
    `vit_small_patch16_224`) and facebookresearch/dinov2 (adds
    `blocks.{i}.ls1|ls2.gamma` LayerScale, `mask_token`, and for the
    register models `register_tokens`): `cls_token`, `pos_embed`,
    `patch_embed.proj.*`, `blocks.{i}.norm1|attn.qkv|attn.proj|norm2|
    mlp.fc1|mlp.fc2.*`, `norm.*`;
  hf: Hugging Face hub files of `ViTModel` (`facebook/dino-vits16`) and
    `Dinov2Model` / `Dinov2WithRegistersModel` (`facebook/dinov2-small`):
    `embeddings.*`, `encoder.layer.{i}.attention.attention.{query,key,
    value}`, `attention.output.dense`, ViT's `layernorm_before|after`,
    `intermediate.dense`, `output.dense`, DINOv2's `norm1|2`, `mlp.fc1|2`,
    `layer_scale1|2.lambda1`, `layernorm`;
  hf5: what transformers >= 5 `state_dict()` returns: `q_proj`, `k_proj`,
    `v_proj`, `o_proj` instead (and `layers.{i}` for ViT).
q, k, v are concatenated into jaxlm's fused `qkv`. The variant (width ->
Ti/S/B, patch, depth, stored position grid, LayerScale, registers) is read
off the tensors; `mask_token` (masked-image training only) is dropped.
"""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import numpy as np

from jaxlm.checkpoints import check_tree, unflatten
from jaxlm.convert.rules import Rules, conv, linear, mapping_lines
from jaxlm.errors import ConversionError
from jaxlm.models import vit

SIZE_BY_WIDTH = {192: 'Ti', 384: 'S', 768: 'B'}
# Parts a ViT encoder does not use (classifier heads, the masking token).
_IGNORED = re.compile(r'^(head\.|fc_norm\.|pooler\.|classifier\.|'
                      r'mask_token$|embeddings\.mask_token$)')

# Per-layer names of each Hugging Face layout.
_HF = {
    ('hf', 'vit'): dict(layer='encoder.layer', norm1='layernorm_before',
                        norm2='layernorm_after', q='attention.attention.query',
                        k='attention.attention.key',
                        v='attention.attention.value',
                        o='attention.output.dense', fc1='intermediate.dense',
                        fc2='output.dense'),
    ('hf5', 'vit'): dict(layer='layers', norm1='layernorm_before',
                         norm2='layernorm_after', q='attention.q_proj',
                         k='attention.k_proj', v='attention.v_proj',
                         o='attention.o_proj', fc1='mlp.fc1', fc2='mlp.fc2'),
    ('hf', 'dinov2'): dict(layer='encoder.layer', norm1='norm1', norm2='norm2',
                           q='attention.attention.query',
                           k='attention.attention.key',
                           v='attention.attention.value',
                           o='attention.output.dense', fc1='mlp.fc1',
                           fc2='mlp.fc2', ls1='layer_scale1.lambda1',
                           ls2='layer_scale2.lambda1'),
    ('hf5', 'dinov2'): dict(layer='encoder.layer', norm1='norm1',
                            norm2='norm2', q='attention.q_proj',
                            k='attention.k_proj', v='attention.v_proj',
                            o='attention.o_proj', fc1='mlp.fc1', fc2='mlp.fc2',
                            ls1='layer_scale1.lambda1',
                            ls2='layer_scale2.lambda1'),
}


def strip_prefix(tensors: dict, candidates=('vit.', 'dino.', 'dinov2.',
                                            'model.', 'encoder_model.')):
  for p in candidates:
    if tensors and all(k.startswith(p) for k in tensors):
      return {k[len(p):]: v for k, v in tensors.items()}
  return tensors


def key_style(tensors: dict, where: str) -> str:
  """'original', 'hf' or 'hf5' (see the module docstring)."""
  if 'patch_embed.proj.weight' in tensors:
    return 'original'
  if 'embeddings.patch_embeddings.projection.weight' in tensors:
    return 'hf' if any('attention.attention.query' in k for k in tensors) \
        else 'hf5'
  raise ConversionError(
      f'{where}: not a DINO ViT checkpoint (no patch_embed.proj.weight or '
      f'embeddings.patch_embeddings.projection.weight; first keys: '
      f'{", ".join(list(tensors)[:6])})')


def _family(tensors: dict) -> str:
  return 'dinov2' if any(k.endswith(('ls1.gamma', 'layer_scale1.lambda1'))
                         for k in tensors) else 'vit'


def _get(tensors, style, original, hf):
  return tensors[original if style == 'original' else hf]


def infer_variant(tensors: dict, style: str) -> str:
  """The jaxlm variant string, e.g. 'S/16' or 'S/14:pretrain=518:layerscale=1'."""
  w = _get(tensors, style, 'patch_embed.proj.weight',
           'embeddings.patch_embeddings.projection.weight')
  width, patch = int(w.shape[0]), int(w.shape[-1])
  if width not in SIZE_BY_WIDTH:
    raise ConversionError(f'ViT width {width} is none of '
                          f'{sorted(SIZE_BY_WIDTH)} (Ti, S, B)')
  layer = ('blocks' if style == 'original'
           else _HF[(style, _family(tensors))]['layer'])
  depth = 1 + max(int(m.group(1)) for k in tensors
                  if (m := re.match(re.escape(layer) + r'\.(\d+)\.', k)))
  pos = _get(tensors, style, 'pos_embed', 'embeddings.position_embeddings')
  g = int(round(np.sqrt(pos.shape[1] - 1)))
  if g * g != pos.shape[1] - 1:
    raise ConversionError(f'position embedding of {pos.shape[1] - 1} patches '
                          f'is not a square grid')
  reg = tensors.get('register_tokens' if style == 'original'
                    else 'embeddings.register_tokens')
  name = f'{SIZE_BY_WIDTH[width]}/{patch}'
  default = vit.decode_variant(name)
  found = dict(depth=depth, pretrain=g * patch,
               layerscale=int(_family(tensors) == 'dinov2'),
               registers=0 if reg is None else int(reg.shape[1]))
  for k, v in found.items():
    if v != default[k]:
      name += f':{k}={v}'
  return name


def vit_rules(style: str, variant: str, src: str = '', dst: str = '',
              family: str = 'vit') -> Rules:
  """Rules from a ViT's keys (under `src`) to jaxlm's ViT (under `dst`)."""
  cfg = vit.decode_variant(variant)
  r = Rules()
  if style == 'original':
    emb = dict(patch='patch_embed.proj', pos='pos_embed', cls='cls_token',
               reg='register_tokens', norm='norm')
    names = dict(layer='blocks', norm1='norm1', norm2='norm2', qkv='attn.qkv',
                 o='attn.proj', fc1='mlp.fc1', fc2='mlp.fc2',
                 ls1='ls1.gamma', ls2='ls2.gamma')
  else:
    emb = dict(patch='embeddings.patch_embeddings.projection',
               pos='embeddings.position_embeddings',
               cls='embeddings.cls_token', reg='embeddings.register_tokens',
               norm='layernorm')
    names = _HF[(style, family)]
  r.add(f'{dst}patch_embed/kernel', f'{src}{emb["patch"]}.weight', conv)
  r.add(f'{dst}patch_embed/bias', f'{src}{emb["patch"]}.bias')
  r.add(f'{dst}pos_embed', f'{src}{emb["pos"]}')
  r.add(f'{dst}cls_token', f'{src}{emb["cls"]}')
  if cfg['registers']:
    r.add(f'{dst}register_tokens', f'{src}{emb["reg"]}')
  r.add(f'{dst}norm/scale', f'{src}{emb["norm"]}.weight')
  r.add(f'{dst}norm/bias', f'{src}{emb["norm"]}.bias')
  for i in range(cfg['depth']):
    s, d = f'{src}{names["layer"]}.{i}.', f'{dst}blocks_{i}/'
    for n in ('norm1', 'norm2'):
      r.add(f'{d}{n}/scale', f'{s}{names[n]}.weight')
      r.add(f'{d}{n}/bias', f'{s}{names[n]}.bias')
    if 'qkv' in names:
      r.add(f'{d}qkv/kernel', f'{s}{names["qkv"]}.weight', linear)
      r.add(f'{d}qkv/bias', f'{s}{names["qkv"]}.bias')
    else:
      qkv = [s + names[n] for n in ('q', 'k', 'v')]
      r.add(f'{d}qkv/kernel', [q + '.weight' for q in qkv],
            lambda q, k, v: linear(np.concatenate([q, k, v], axis=0)))
      r.add(f'{d}qkv/bias', [q + '.bias' for q in qkv],
            lambda q, k, v: np.concatenate([q, k, v], axis=0))
    for n, b in (('o', 'proj'), ('fc1', 'fc1'), ('fc2', 'fc2')):
      r.add(f'{d}{b}/kernel', f'{s}{names[n]}.weight', linear)
      r.add(f'{d}{b}/bias', f'{s}{names[n]}.bias')
    if cfg['layerscale']:
      r.add(f'{d}ls1', f'{s}{names["ls1"]}')
      r.add(f'{d}ls2', f'{s}{names["ls2"]}')
  return r


def vit_abstract(variant: str):
  p = vit.decode_variant(variant)['patch']
  return jax.eval_shape(lambda: vit.ViT(variant=variant).init(
      jax.random.PRNGKey(0), jnp.zeros((1, 2 * p, 2 * p, 3), jnp.uint8)))[
          'params']


def convert_dino(tensors: dict, where: str, variant: str | None = None,
                 family: str | None = None):
  """(params tree of models.vit.ViT, variant, key style, mapping lines).

  family: 'vit' (DINO v1) or 'dinov2' to insist on one (None: either).
  """
  tensors = strip_prefix(tensors)
  style = key_style(tensors, where)
  fam = _family(tensors)
  if family and fam != family:
    what = {'vit': 'DINO v1 (no LayerScale)', 'dinov2': 'DINOv2 (LayerScale)'}
    raise ConversionError(f'{where}: a {what[fam]} checkpoint; convert it '
                          f'with `jaxlm convert {"dino" if fam == "vit" else "dinov2"}`')
  found = infer_variant(tensors, style)
  if variant and vit.decode_variant(variant) != vit.decode_variant(found):
    raise ConversionError(f'{where}: --variant {variant} but the checkpoint '
                          f'is a {found}')
  rules = vit_rules(style, found, family=fam)
  rules.ignore = {k for k in tensors if _IGNORED.match(k)}
  tree = unflatten(rules.apply(tensors, where))
  check_tree(vit_abstract(found), tree, where)
  return tree, found, style, mapping_lines(rules.applied, tree, rules.ignore)
