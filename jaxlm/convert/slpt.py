"""Official SLPT / DSLPT checkpoints -> a jaxlm run folder.

The official models (`Sparse_alignment_network`, `Dynamic_sparse_alignment_
network`) hold:
  backbone.*            HRNetV2-W18 (SLPT: lite, head `head.0/1/3`; DSLPT:
                        full, head `head.0`), BatchNorm running statistics
                        included;
  feature_extractor.*   the K x K patch convolution (DSLPT: with bias);
  feature_norm.*        a LayerNorm the forward pass never uses (dropped);
  Transformer.structure_encoding, Transformer.landmark_query  (1, N, d);
  Transformer.Transformer_block.layers.{i}.*  nn.MultiheadAttention
                        `self_attn`, `multihead_attn`, `linear1|2`,
                        `norm1|2|3`; `Transformer.Transformer_block.norm`;
  out_layer.*           SLPT's head Linear(d, 2);
  embedding_layer, out_mean_layer, out_std_layer   DSLPT's Gaussian head.
A `module.` prefix (DataParallel) is removed. The initial shape comes from
the official `init_<N>.npz` (`init_face`, 256-pixel units).

jaxlm's HRNet names are the official keys with sequence indices joined by
'_', so the backbone maps by renaming: 4-D conv weights (O, I, kh, kw) ->
(kh, kw, I, O) kernels; BatchNorm weight/bias -> scale/bias (params) and
running_mean/var -> mean/var (batch_stats); num_batches_tracked dropped.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Callable

import numpy as np

from jaxlm import layouts, models
from jaxlm.checkpoints import check_tree, unflatten
from jaxlm.convert.rules import Rules, conv, linear, mapping_lines
from jaxlm.errors import ConversionError
from jaxlm.convert.tufa import DEFAULT_LAYOUT, decoder_rules


def strip_prefix(tensors: dict) -> dict:
  if tensors and all(k.startswith('module.') for k in tensors):
    return {k[len('module.'):]: v for k, v in tensors.items()}
  return tensors


def _slpt_head(r: Rules):
  r.add('params/head/kernel', 'out_layer.weight', linear)
  r.add('params/head/bias', 'out_layer.bias')


def _gaussian_head(r: Rules):
  for src, dst in (('embedding_layer', 'embedding'),
                   ('out_mean_layer', 'mean'), ('out_std_layer', 'variance')):
    r.add(f'params/head/{dst}/kernel', f'{src}.weight', linear)
    r.add(f'params/head/{dst}/bias', f'{src}.bias')


@dataclasses.dataclass(frozen=True)
class Official:
  """One official model: the key that identifies it, what differs."""
  family: str  # the jaxlm model family it becomes
  head_key: str
  head: Callable[[Rules], None]
  patch_bias: bool  # the patch convolution has a bias


OFFICIAL = (Official('dslpt', 'out_mean_layer.weight', _gaussian_head, True),
            Official('slpt', 'out_layer.weight', _slpt_head, False))


def detect(tensors: dict, where: str) -> Official:
  """The official model of a state dict, by its head's keys."""
  for official in OFFICIAL:
    if official.head_key in tensors:
      return official
  raise ConversionError(
      f'{where}: not an official SLPT or DSLPT checkpoint: expected '
      f'out_layer.weight (SLPT) or out_mean_layer.weight (DSLPT) (first keys:'
      f' {", ".join(list(tensors)[:6])})')


def _flax_path(key: str) -> str:
  """'stage2.0.branches.1.3.conv1' -> 'stage2_0/branches_1_3/conv1'."""
  out = []
  for part in key.split('.'):
    if part.isdigit() and out:
      out[-1] += '_' + part
    else:
      out.append(part)
  return '/'.join(out)


def hrnet_variant(tensors: dict, where: str) -> str:
  full = any(k.startswith('backbone.stage3.1.') for k in tensors)
  lite_head = 'backbone.head.3.weight' in tensors
  if not any(k.startswith('backbone.stage4.0.') for k in tensors):
    raise ConversionError(f'{where}: no HRNet backbone (backbone.stage4.*)')
  if full and not lite_head:
    return 'hrnet'
  if not full and lite_head:
    return 'hrnet_lite'
  raise ConversionError(
      f'{where}: an HRNet with {"1/4/3" if full else "1/1/1"} modules and a '
      f'{"two" if lite_head else "one"}-convolution head; jaxlm has the '
      f'official pairs only (lite: 1/1/1 + two, full: 1/4/3 + one)')


def backbone_rules(r: Rules, tensors: dict):
  bn_modules = {k[:-len('.running_mean')] for k in tensors
                if k.startswith('backbone.') and k.endswith('.running_mean')}
  for key, value in tensors.items():
    if not key.startswith('backbone.'):
      continue
    module, _, leaf = key.rpartition('.')
    path = 'backbone/' + _flax_path(module[len('backbone.'):])
    if leaf == 'num_batches_tracked':
      r.ignore.add(key)
    elif module in bn_modules:
      target = {'weight': f'params/{path}/scale',
                'bias': f'params/{path}/bias',
                'running_mean': f'batch_stats/{path}/mean',
                'running_var': f'batch_stats/{path}/var'}[leaf]
      r.add(target, key)
    elif leaf == 'weight' and np.ndim(value) == 4:
      r.add(f'params/{path}/kernel', key, conv)
    elif leaf == 'bias':
      r.add(f'params/{path}/bias', key)
    else:
      raise ConversionError(f'unexpected backbone tensor {key} '
                            f'{np.shape(value)}')


def slpt_rules(tensors: dict, official: Official):
  """(Rules, model settings) of an official SLPT/DSLPT state dict."""
  r = Rules()
  backbone_rules(r, tensors)
  w = tensors['feature_extractor.weight']  # (d, C, K, K)
  r.add('params/patch_embed/kernel', 'feature_extractor.weight', conv)
  if official.patch_bias:
    r.add('params/patch_embed/bias', 'feature_extractor.bias')
  r.ignore.update(k for k in tensors if k.startswith('feature_norm.'))
  for name in ('structure_encoding', 'landmark_query'):
    r.add(f'params/{name}', f'Transformer.{name}', lambda x: x[0])
  width = int(tensors['Transformer.landmark_query'].shape[-1])
  prefix = 'Transformer.Transformer_block.layers.'
  depth = 1 + max(int(k[len(prefix):].split('.')[0]) for k in tensors
                  if k.startswith(prefix))
  decoder_rules(r, 'Transformer.Transformer_block.', 'params/transformer/',
                depth, width)
  official.head(r)
  settings = dict(
      width=width, num_layers=depth, patch=int(w.shape[-1]),
      # the head count is not stored: it comes from the config (8)
      mlp_dim=int(tensors[f'{prefix}0.linear1.weight'].shape[0]),
      num_points=int(tensors['Transformer.landmark_query'].shape[1]))
  return r, settings


def read_initial_shape(path) -> np.ndarray:
  """(N, 2) official `init_<N>.npz` (`init_face`, 256 px) in crop units."""
  path = Path(path)
  try:
    with np.load(path, allow_pickle=False) as z:
      if 'init_face' not in z.files:
        raise ConversionError(f'{path}: no init_face array (has '
                              f'{", ".join(z.files)})')
      face = np.asarray(z['init_face'], np.float64)
  except (OSError, ValueError) as e:
    raise ConversionError(f'{path}: not a readable .npz file ({e})') from None
  if face.size % 2 or not np.all(np.isfinite(face)):
    raise ConversionError(f'{path}: init_face {face.shape} is not N x 2 '
                          f'finite coordinates')
  return (face.reshape(-1, 2) / 256.0).astype(np.float32)


def convert_slpt(tensors: dict, initial: np.ndarray, config, where: str,
                 dataset: str = '', layout: str = ''):
  """(variables, datasets, config, lines) of a jaxlm SLPT/DSLPT.

  config: an SLPT or DSLPT config whose model kind must match the checkpoint
    (configs/slpt_hrnet_lite_wflw.py, configs/dslpt_hrnet_wflw.py); its
    single training dataset (renamed `dataset` / relaid `layout` if given)
    becomes the run's.
  """
  tensors = strip_prefix(tensors)
  official = detect(tensors, where)
  kind = official.family
  backbone = hrnet_variant(tensors, where)
  rules, settings = slpt_rules(tensors, official)
  c = config
  if c.model.name != kind:
    raise ConversionError(f'{where}: a {kind.upper()} checkpoint but the '
                          f'config is model.name={c.model.name!r}; use '
                          f'configs/{kind}_*.py')
  n = settings.pop('num_points')
  if len(initial) != n:
    raise ConversionError(f'{where}: {n} landmark queries but the initial '
                          f'shape file has {len(initial)} points')
  c.model.variant = backbone
  for k, v in settings.items():
    c.model[k] = v
  if len(c.data.train) != 1:
    raise ConversionError('the config must have one training dataset')
  (name, entry), = c.data.train.items()
  entry = entry.to_dict()
  layout = layout or (entry['layout'] if layouts.get(
      entry['layout']).num_points == n else DEFAULT_LAYOUT.get(n, ''))
  if not layout:
    raise ConversionError(f'{n} landmarks: name their layout (--layout)')
  entry['layout'] = layout
  dataset = dataset or name
  c.data.train = {dataset: entry}
  c.data.eval = {k: v for k, v in c.data.eval.items()
                 if v.get('prompts', '') == name and
                 layouts.get(v.layout).num_points == n}
  for v in c.data.eval.values():
    v.prompts = dataset
  flat = rules.apply(tensors, where)
  flat['constants/mean_shape'] = initial
  variables = unflatten(flat)
  datasets = ((dataset, n),)
  model = models.build(c.model, datasets)
  check_tree(models.abstract_variables(model, c.data.image_size), variables,
             where)
  lines = mapping_lines(rules.applied, variables,
                        ignored=sorted(rules.ignore))
  lines.append(f'constants/mean_shape ({n}, 2) <- init_face / 256 of the '
               f'initial shape file')
  return variables, datasets, c, lines

