"""Official TUFA checkpoints (the `Face_prompt` model) -> a jaxlm run folder.

The official model: `Encoder` (DINO ViT, original key names), `Decoder`
(`Decoder.Decoder.layers.{i}` built on `nn.MultiheadAttention`: packed
`in_proj_weight`/`in_proj_bias` for q, k, v, `out_proj`; `self_attn`,
`multihead_attn`, `linear1|2`, `norm1|2|3`; one final `Decoder.Decoder.norm`)
and the head `Linear.0` / `Linear.2`. The structure prompts have no weights.

Its prompt files `shape_N.npz` hold `init` (the dataset's mean shape) and
`offset` (the mean shape with the learned semantic alignment added), both in
256-pixel crop units; official inference prompts with `offset / 256`. jaxlm
keeps the two apart: the mean shape goes to the `constants` collection and
`(offset - init) / 256` becomes the dataset's alignment table, so
`dataset_prompts(name)` is exactly `offset / 256`.

The result is a run folder (`checkpoints.write_run`) that `jaxlm
eval/predict --checkpoint DIR` load.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from jaxlm import layouts, models
from jaxlm.checkpoints import check_tree, unflatten
from jaxlm.convert.rules import Rules, linear, mapping_lines
from jaxlm.errors import ConversionError
from jaxlm.convert.dino import infer_variant, vit_rules

# Layout of a prompt file by its number of points (override with name=file:layout).
DEFAULT_LAYOUT = {98: 'wflw98', 68: '300w68', 29: 'cofw29', 19: 'aflw19',
                  5: 'celeba5'}


def read_prompt_file(path) -> tuple[np.ndarray, np.ndarray]:
  """(init, offset) (N, 2) in [0, 1] crop units of an official shape_N.npz."""
  path = Path(path)
  try:
    with np.load(path, allow_pickle=False) as z:
      missing = [k for k in ('init', 'offset') if k not in z.files]
      if missing:
        raise ConversionError(f'{path}: missing array(s) {", ".join(missing)}'
                              f' (has {", ".join(z.files)})')
      init, offset = np.asarray(z['init'], np.float64), np.asarray(
          z['offset'], np.float64)
  except (OSError, ValueError) as e:
    raise ConversionError(f'{path}: not a readable .npz prompt file ({e})'
                          ) from None
  if init.ndim != 2 or init.shape[1] != 2 or init.shape != offset.shape:
    raise ConversionError(f'{path}: init {init.shape} / offset {offset.shape},'
                          f' expected two (N, 2) arrays')
  return (init / 256.0).astype(np.float32), (offset / 256.0).astype(np.float32)


def _mha(r: Rules, src: str, dst: str, width: int):
  """nn.MultiheadAttention (packed q, k, v) -> query/key/value/out Dense."""
  for j, name in enumerate(('query', 'key', 'value')):
    rows = slice(j * width, (j + 1) * width)
    r.add(f'{dst}/{name}/kernel', f'{src}.in_proj_weight',
          lambda w, rows=rows: linear(w[rows]))
    r.add(f'{dst}/{name}/bias', f'{src}.in_proj_bias',
          lambda b, rows=rows: b[rows])
  r.add(f'{dst}/out/kernel', f'{src}.out_proj.weight', linear)
  r.add(f'{dst}/out/bias', f'{src}.out_proj.bias')


def decoder_rules(r: Rules, src: str, dst: str, depth: int, width: int):
  """A DETR-style pre-norm decoder built on nn.MultiheadAttention
  (`{src}layers.{i}.self_attn|multihead_attn|linear1|2|norm1|2|3`, final
  `{src}norm`) -> jaxlm's PromptDecoder at `dst`. TUFA's prompt decoder and
  SLPT's inherent relation layers share it."""
  for i in range(depth):
    s, d = f'{src}layers.{i}.', f'{dst}layers_{i}'
    _mha(r, s + 'self_attn', d + '/self_attn', width)
    _mha(r, s + 'multihead_attn', d + '/cross_attn', width)
    for n in ('linear1', 'linear2'):
      r.add(f'{d}/{n}/kernel', f'{s}{n}.weight', linear)
      r.add(f'{d}/{n}/bias', f'{s}{n}.bias')
    for n in ('norm1', 'norm2', 'norm3'):
      r.add(f'{d}/{n}/scale', f'{s}{n}.weight')
      r.add(f'{d}/{n}/bias', f'{s}{n}.bias')
  r.add(f'{dst}norm/scale', f'{src}norm.weight')
  r.add(f'{dst}norm/bias', f'{src}norm.bias')


def tufa_rules(tensors: dict, where: str):
  """(Rules, variant, decoder depth, width) of an official checkpoint."""
  enc = {k[len('Encoder.'):]: v for k, v in tensors.items()
         if k.startswith('Encoder.')}
  if 'patch_embed.proj.weight' not in enc or not any(
      k.startswith('Decoder.Decoder.layers.') for k in tensors):
    raise ConversionError(
        f'{where}: not an official TUFA (Face_prompt) checkpoint: expected '
        f'Encoder.patch_embed.proj.weight and Decoder.Decoder.layers.* '
        f'(first keys: {", ".join(list(tensors)[:6])})')
  variant = infer_variant(enc, 'original')
  depth = 1 + max(int(k.split('.')[3]) for k in tensors
                  if k.startswith('Decoder.Decoder.layers.'))
  width = int(enc['cls_token'].shape[-1])
  r = vit_rules('original', variant, src='Encoder.', dst='encoder/')
  decoder_rules(r, 'Decoder.Decoder.', 'decoder/', depth, width)
  r.add('head/fc1/kernel', 'Linear.0.weight', linear)
  r.add('head/fc1/bias', 'Linear.0.bias')
  r.add('head/fc2/kernel', 'Linear.2.weight', linear)
  r.add('head/fc2/bias', 'Linear.2.bias')
  return r, variant, depth, width


def convert_tufa(tensors: dict, prompts: dict[str, tuple], config, where: str):
  """(variables, datasets, config) of a jaxlm TUFA from the official files.

  prompts: {dataset name: (init, offset, layout)} in the config's training
  dataset order is not required: datasets are sorted by name like configs.
  config: a TUFA config (e.g. configs/tufa_vits16_multi.py) whose model
    settings must match the checkpoint; its training datasets become those
    of `prompts`, and eval entries prompting with other datasets are dropped.
  """
  rules, variant, depth, width = tufa_rules(tensors, where)
  flat = rules.apply(tensors, where)
  names = sorted(prompts)
  for name in names:
    flat[f'alignment/{name}'] = prompts[name][1] - prompts[name][0]
  params = unflatten(flat)
  c = config
  c.model.variant = variant
  c.model.decoder_layers = depth
  c.model.pos_resize = 'dino'  # the official encoder's interpolation
  c.model.decoder_mlp = int(
      params['decoder']['layers_0']['linear1']['kernel'].shape[1])
  c.model.head_hidden = int(params['head']['fc1']['kernel'].shape[1])
  train = {}
  for name in names:
    layout = prompts[name][2]
    base = c.data.train.get(name)
    entry = base.to_dict() if base is not None else dict(source='tfds')
    entry['layout'] = layout
    train[name] = entry
  c.data.train = train
  kept = {k: v for k, v in c.data.eval.items()
          if v.get('prompts', 'mean_shape') in names + ['mean_shape']}
  c.data.eval = kept
  datasets = tuple((n, layouts.get(prompts[n][2]).num_points) for n in names)
  model = models.build(c.model, datasets)
  abstract = models.abstract_variables(model, c.data.image_size)
  check_tree(abstract['params'], params, where)
  mean = np.concatenate([prompts[n][0] for n in names]).astype(np.float32)
  constants = {'alignment': {'mean_shape': mean}}
  check_tree(abstract['constants'], constants, where + ' (prompt files)')
  lines = mapping_lines(rules.applied, params)
  lines += [f'alignment/{n} {prompts[n][0].shape} <- (offset - init) / 256 '
            f'of its prompt file' for n in names]
  return dict(params=params, constants=constants), datasets, c, lines

