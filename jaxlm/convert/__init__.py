"""PyTorch checkpoints -> jaxlm weights, as a pipeline of small steps.

  read tensors (`tensor_files.read_tensors`: .pth/.pt with
  torch.load(weights_only=True), or .safetensors) -> rename keys and
  reshape/transpose (`rules.Rules`: one rule per target parameter, naming the
  source keys it consumes) -> check the result against the shapes of the
  target model (`checkpoints.check_tree`) -> write it with the one
  checkpoint IO (`checkpoints.save_weights` for encoders,
  `checkpoints.write_run` for whole models), into a temporary folder renamed
  when complete, so a failed conversion leaves nothing at the destination.

One key map per source: `dino.py` (DINO v1 and DINOv2, original/timm and
Hugging Face names), `dinov3.py`, `convnext.py` (the 3D-query family's
feature extractor, HF or original names), `tufa.py` (official Face_prompt + prompt
files), `slpt.py` (official SLPT / DSLPT). `convert(kind, ...)` is what
`jaxlm convert KIND` runs.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from jaxlm import checkpoints, models
from jaxlm import config as config_lib
from jaxlm.convert.tensor_files import read_tensors
from jaxlm.errors import ConversionError, JaxlmError

log = logging.getLogger('jaxlm')

# Config a whole-model conversion takes its model/eval settings from when
# none is given (shipped in jaxlm.configs).
DEFAULT_CONFIG = {'tufa': 'tufa_vits16_multi.py',
                  'slpt': 'slpt_hrnet_lite_wflw.py',
                  'dslpt': 'dslpt_hrnet_wflw.py'}


def _encoder(kind, tensors, where, dst, meta, opts):
  """DINO v1/v2/v3 or ConvNeXt -> a weights folder (`init.encoder`)."""
  if kind == 'convnext':
    from jaxlm.convert import convnext  # pylint: disable=g-import-not-at-top
    tree, variant, style, lines = convnext.convert_convnext(
        tensors, where, opts.get('variant'))
  elif kind == 'dinov3':
    from jaxlm.convert import dinov3  # pylint: disable=g-import-not-at-top
    tree, variant, style, lines = dinov3.convert_dinov3(tensors, where,
                                                        opts.get('variant'))
  else:
    from jaxlm.convert import dino  # pylint: disable=g-import-not-at-top
    tree, variant, style, lines = dino.convert_dino(
        tensors, where, opts.get('variant'),
        family='vit' if kind == 'dino' else 'dinov2')
  meta.update(variant=variant, key_style=style,
              num_params=models.num_params(tree))
  checkpoints.save_weights(dst, tree, meta)
  return lines


def _config(kind, opts):
  path = opts.get('config') or DEFAULT_CONFIG[kind]
  cfg = config_lib.load_config(path)
  config_lib.apply_overrides(cfg, opts.get('overrides') or {})
  return cfg, path


def _tufa(kind, tensors, where, dst, meta, opts):
  """Official TUFA + its prompt files -> a run folder."""
  from jaxlm.convert import tufa  # pylint: disable=g-import-not-at-top
  specs = opts.get('prompts')
  if not specs:
    raise JaxlmError('convert tufa needs --prompts NAME=shape_N.npz[:layout]'
                     ' for each training dataset (e.g. wflw=Prompt/'
                     'shape_98.npz w300=Prompt/shape_68.npz cofw=Prompt/'
                     'shape_29.npz)')
  prompts = {}
  for spec in specs:
    name, eq, rest = spec.partition('=')
    if not eq or not name:
      raise JaxlmError(f'--prompts {spec!r}: expected NAME=FILE[:layout]')
    file, _, layout = rest.partition(':')
    init, offset = tufa.read_prompt_file(file)
    layout = layout or tufa.DEFAULT_LAYOUT.get(len(init), '')
    if not layout:
      raise JaxlmError(f'--prompts {spec}: {len(init)} points; name the '
                       f'layout as {name}={file}:<layout>')
    prompts[name] = (init, offset, layout)
  cfg, cfg_path = _config(kind, opts)
  variables, datasets, cfg, lines = tufa.convert_tufa(tensors, prompts, cfg,
                                                      where)
  meta.update(variant=cfg.model.variant, datasets=[list(d) for d in datasets],
              prompt_files=list(specs), config=cfg_path,
              num_params=models.num_params(variables['params']))
  checkpoints.write_run(dst, variables, datasets, config_lib.to_json(cfg),
                        meta)
  return lines


def _slpt(kind, tensors, where, dst, meta, opts):
  """Official SLPT / DSLPT + its initial shape -> a run folder."""
  from jaxlm.convert import slpt  # pylint: disable=g-import-not-at-top
  if not opts.get('init'):
    raise JaxlmError(f'convert {kind} needs --init init_N.npz (the '
                     f'official initial shape, e.g. Config/init_98.npz)')
  initial = slpt.read_initial_shape(opts['init'])
  cfg, cfg_path = _config(kind, opts)
  variables, datasets, cfg, lines = slpt.convert_slpt(
      tensors, initial, cfg, where, dataset=opts.get('dataset') or '',
      layout=opts.get('layout') or '')
  meta.update(variant=cfg.model.variant,
              datasets=[list(d) for d in datasets], init=opts['init'],
              config=cfg_path,
              num_params=models.num_params(variables['params']))
  checkpoints.write_run(dst, variables, datasets, config_lib.to_json(cfg),
                        meta)
  return lines


KINDS = {'dino': _encoder, 'dinov2': _encoder, 'dinov3': _encoder,
         'convnext': _encoder, 'tufa': _tufa, 'slpt': _slpt, 'dslpt': _slpt}


def convert(kind: str, src, dst, **opts) -> tuple[dict, list[str]]:
  """Converts the PyTorch file `src` of `kind` into `dst`.

  Options: variant (expected ViT or ConvNeXt variant), prompts (tufa: NAME=FILE[:layout]
  specs), config (tufa/slpt/dslpt: the config whose model/eval settings the
  run uses; default `DEFAULT_CONFIG`), overrides ({'key': 'value'} applied to
  it), init (slpt/dslpt: the official init_N.npz), dataset, layout,
  allow_nonfinite (convert tensors holding NaN/inf, with a warning, instead
  of refusing the file).

  Returns (meta written to convert.json, one line per converted parameter
  naming the source keys it came from).
  """
  if kind not in KINDS:
    raise JaxlmError(f'convert {kind}: unknown kind (known: '
                     f'{", ".join(KINDS)})')
  if opts.get('variant'):
    from jaxlm.models import convnext, vit  # pylint: disable=g-import-not-at-top
    try:
      (convnext if kind == 'convnext' else vit).decode_variant(
          opts['variant'])
    except ValueError as e:
      raise ConversionError(f'--variant: {e}') from None
  dst = Path(dst).expanduser()
  if dst.exists() and (not dst.is_dir() or any(dst.iterdir())):
    raise ConversionError(f'--dst {dst} exists and is not an empty folder')
  tensors = read_tensors(Path(src).expanduser())
  bad = sorted(k for k, v in tensors.items()
               if np.issubdtype(v.dtype, np.floating) and
               not np.isfinite(v).all())
  if bad and not opts.get('allow_nonfinite'):
    raise ConversionError(
        f'{src}: {len(bad)} tensor(s) hold NaN or infinite values: '
        f'{", ".join(bad[:8])}{" ..." if len(bad) > 8 else ""}; nothing was '
        f'written (--allow_nonfinite converts them anyway)')
  if bad:
    log.warning('%s: converting %d tensor(s) with NaN or infinite values: %s',
                src, len(bad), ', '.join(bad[:8]))
  meta = dict(kind=kind, source=str(Path(src).expanduser().absolute()),
              source_tensors=len(tensors))
  lines = KINDS[kind](kind, tensors, str(src), dst, meta, opts)
  return meta, lines
