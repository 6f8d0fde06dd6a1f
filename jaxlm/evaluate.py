"""Jitted evaluation: NME / FR / AUC per dataset, CED plot, overlays, report.

Predictions are mapped to pixels of the evaluated image (for the synthetic
benchmark the image is the crop itself) and normalised per `eval.normaliser`.
For each dataset the report also gives the NME of predicting the mean shape,
the baseline a model must beat.

Prompts per eval dataset (`data.eval.<name>.prompts`):
  '<training dataset>': that dataset's aligned mean shape (seen layout; the
    3D-query families: its query table);
  'mean_shape': zero-shot; the layout's mean shape measured on separate
    faces (`calib_seed`), never trained on (thesis §6.2.4); for the 3D-query
    families the layout's 3D query table (`data/query_tables`), the mean
    shape being the baseline only.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import jax
import ml_collections
import numpy as np
import tqdm

from jaxlm import checkpoints
from jaxlm import config as config_lib
from jaxlm import inference
from jaxlm import layouts as layouts_lib
from jaxlm import metrics, plots
from jaxlm.data import pipeline, query_tables, sources
from jaxlm.errors import JaxlmError

log = logging.getLogger('jaxlm')

OVERLAY_SIZE = 256  # eval overlay tiles: at least this many pixels a side


def _zero_shot_prompts(name, ecfg, image_size, num, data_dir):
  """The layout's mean shape on `num` faces never trained or tested on:
  other synthetic seeds (`calib_seed`), or a TFDS dataset's `calib_split`
  (default 'train')."""
  calib = ecfg.to_dict()
  if calib.get('source', 'synthetic') == 'tfds':
    calib['split'] = ecfg.get('calib_split', 'train')
  else:
    calib['seed'] = ecfg.get('calib_seed', ecfg.seed + 1)
    calib['size'] = num
  src = sources.make_source(name, ml_collections.ConfigDict(calib),
                             image_size, data_dir)
  return pipeline.mean_shape(src, num, image_size)


def prompts_for(name, ecfg, model, family, variables, datasets, image_size,
                mean_samples, data_dir=''):
  """(prompts (N, 2) or (N, 3), baseline (N, 2), zero_shot) for one eval
  dataset."""
  train_names = [d for d, _ in datasets]
  spec = ecfg.get('prompts', 'mean_shape')
  if spec in train_names:
    n = dict(datasets)[spec]
    if n != layouts_lib.get(ecfg.layout).num_points:
      raise JaxlmError(f'data.eval.{name}.prompts: training dataset {spec!r} '
                       f'has {n} points, layout {ecfg.layout!r} has '
                       f'{layouts_lib.get(ecfg.layout).num_points}')
    prompts = np.asarray(inference.dataset_prompts(model, variables, spec))
    start = train_names.index(spec)
    offset = sum(k for _, k in datasets[:start])
    table = family.mean_shapes(variables['constants'])
    baseline = np.asarray(table)[offset:offset + n]
    return prompts, baseline, False
  if spec == 'mean_shape':
    family.check_prompts(layouts_lib.get(ecfg.layout).num_points, datasets,
                         f'data.eval.{name} (zero-shot, layout '
                         f'{ecfg.layout})')
    p = _zero_shot_prompts(name, ecfg, image_size, mean_samples, data_dir)
    if family.prompt_dim == 3:  # 3D-query families: the layout's queries
      if ecfg.layout not in query_tables.known_layouts():
        raise JaxlmError(
            f'config key data.eval.{name}.layout: {ecfg.layout!r} has no 3D '
            f'query table (known: {", ".join(query_tables.known_layouts())})')
      return query_tables.layout_queries(ecfg.layout), p, True
    return p, p, True
  raise JaxlmError(f'data.eval.{name}.prompts: {spec!r} is neither a '
                   f'training dataset ({", ".join(train_names)}) nor '
                   f'"mean_shape"')


def evaluate_checkpoint(checkpoint, out_dir=None, config_path=None,
                        overrides=None, progress=True):
  """`jaxlm eval`: evaluates a run folder (or step folder) on its config's
  eval datasets, or on those of `config_path`, with `--config.*`
  `overrides` applied; writes to `out_dir` (default
  `checkpoints.eval_dir`: <run>/eval, or <run>/eval_<step> for a step).
  Returns (results, predictor)."""
  pred = inference.Predictor(checkpoint)
  cfg = pred.config
  if config_path:  # evaluate the given config's eval datasets
    new = config_lib.load_config(config_path)
    cfg.data.eval, cfg.eval = new.data.eval, new.eval
  config_lib.expand_paths(config_lib.apply_overrides(cfg, overrides or {}))
  out_dir = Path(out_dir or checkpoints.eval_dir(checkpoint))
  results = evaluate(cfg, pred, out_dir, progress=progress)
  return results, pred


def evaluate(config, predictor, out_dir, progress=True):
  """Evaluates every `data.eval` dataset of `config` with a loaded
  `inference.Predictor`; writes JSON, CED, overlays, report."""
  out_dir = Path(out_dir)
  out_dir.mkdir(parents=True, exist_ok=True)
  size = config.data.image_size
  ecfg_all = config.eval
  model, family = predictor.model, predictor.family
  variables, datasets = predictor.variables, predictor.datasets
  predict = jax.jit(inference.make_predict(model, family,
                                           with_uncertainty=False))
  results, curves = {}, {}
  data_dir = config.data.get('data_dir', '')
  for name, ecfg in config.data.eval.items():
    layout = layouts_lib.get(ecfg.layout)
    source = sources.eval_source(
        sources.make_source(name, ecfg, size, data_dir))
    if not len(source):
      raise JaxlmError(f'config key data.eval.{name}: the dataset has no '
                       f'faces to evaluate')
    prompts, baseline, zero_shot = prompts_for(
        name, ecfg, model, family, variables, datasets, size,
        config.data.mean_shape_samples, data_dir)
    np.save(out_dir / f'prompts_{name}.npy', prompts)
    kind = ecfg.get('normaliser', ecfg_all.normaliser)
    nmes, vis_nmes, base_nmes, overlays = dataset_nmes(
        lambda images: predict(variables, images, prompts)[0], source,
        baseline, layout, kind, ecfg_all.batch_size, size, ecfg_all.overlays,
        progress, f'eval {name}')
    alpha = ecfg_all.fr_alpha
    res = dict(dataset=name, layout=ecfg.layout, zero_shot=zero_shot,
               normaliser=kind, alpha=alpha,
               **metrics.summarize(nmes, alpha),
               nme_visible=float(np.nanmean(vis_nmes)),
               mean_shape_nme=float(base_nmes.mean()))
    results[name] = res
    curves[name + (' (zero-shot)' if zero_shot else '')] = nmes
    (out_dir / f'{name}.json').write_text(json.dumps(res, indent=2))
    if overlays:
      plots.save_rgb(out_dir / f'overlay_{name}.png', plots.tile(overlays))
  plots.plot_ced(curves, out_dir / 'ced.png', ecfg_all.fr_alpha)
  report = format_report(results)
  (out_dir / 'report.md').write_text(report)
  return results


def dataset_nmes(predict, source, baseline, layout, kind: str,
                 batch_size: int, image_size: int, overlays: int = 0,
                 progress: bool = False, desc: str = 'eval'):
  """Per-face NMEs of one eval dataset (the computation of `jaxlm eval`,
  also run during training by `train.eval_every`).

  Args:
    predict: images (B, S, S, 3) -> landmarks (B, N, 2) in [0, 1] crop
      units; always given `batch_size` images (the last batch padded).
    source: the eval faces (`sources.eval_source`).
    baseline: (N, 2) the mean shape in crop units (the baseline NME).
    layout: the faces' `layouts.Layout`; kind: `eval.normaliser`.
    overlays: how many faces to draw (prediction green, ground truth red).

  Returns:
    (NME of all points, NME of the visible points, NME of the baseline),
    each (faces,), in original-image pixels / the normaliser; and the
    overlay images (at least `OVERLAY_SIZE` pixels a side).
  """
  nmes, vis_nmes, base_nmes, drawn = [], [], [], []
  batches = pipeline.eval_batches(source, batch_size)
  for batch in tqdm.tqdm(batches, total=-(-len(source) // batch_size),
                         desc=desc, disable=not progress, leave=False):
    pred_crop = np.asarray(predict(batch['image'])) * image_size
    base_crop = np.broadcast_to(baseline * image_size, pred_crop.shape)
    pred, gt, base, boxes = _image_space(batch, pred_crop, base_crop)
    has_pos = np.isfinite(gt).all(-1)
    norm = metrics.normaliser(gt, layout, kind, boxes)
    keep = batch['valid']
    nmes.append(metrics.nme(pred, gt, norm, has_pos)[keep])
    vis_nmes.append(metrics.nme(pred, gt, norm,
                                has_pos & batch['visible'])[keep])
    base_nmes.append(metrics.nme(base, gt, norm, has_pos)[keep])
    for i in np.flatnonzero(keep):
      if len(drawn) < overlays:
        drawn.append(plots.draw_landmarks(
            batch['image'][i], pred_crop[i], gt=batch['landmarks'][i],
            layout=layout, legend=not drawn, min_size=OVERLAY_SIZE))
  return (np.concatenate(nmes), np.concatenate(vis_nmes),
          np.concatenate(base_nmes), drawn)


def _image_space(batch, pred, base):
  """(pred, gt, baseline, boxes) in original-image pixels.

  TFDS faces carry the crop -> image affine and the dataset's face box;
  synthetic faces are their own image, boxed by the landmarks.
  """
  gt = np.asarray(batch['landmarks'], np.float64)
  if 'to_image' not in batch:
    lo, hi = np.nanmin(gt, axis=1), np.nanmax(gt, axis=1)
    return pred, gt, base, np.concatenate([lo, hi], axis=-1)
  m = np.asarray(batch['to_image'], np.float64)  # (B, 2, 3)
  to = lambda p: np.einsum('bij,bnj->bni', m[:, :, :2], p) + m[:, None, :, 2]
  return to(pred), to(gt), to(base), batch['box']


def format_report(results: dict) -> str:
  lines = ['| dataset | layout | prompts | normaliser | NME % | FR@α % | '
           'AUC@α | mean-shape NME % | faces |',
           '|---|---|---|---|---|---|---|---|---|']
  for r in results.values():
    lines.append(
        f'| {r["dataset"]} | {r["layout"]} | '
        f'{"zero-shot" if r["zero_shot"] else "trained"} | '
        f'{r["normaliser"]} | {100 * r["nme"]:.2f} | {100 * r["fr"]:.2f} | '
        f'{r["auc"]:.4f} | {100 * r["mean_shape_nme"]:.2f} | {r["count"]} |')
  alpha = next(iter(results.values()))['alpha'] if results else 0.1
  return (f'NME in original-image pixels / the normaliser; FR and AUC at '
          f'α = {alpha}.\n\n' + '\n'.join(lines) + '\n')
