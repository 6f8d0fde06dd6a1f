"""`jaxlm eval --suite NAME`: every table of named benchmark protocols.

Runs the tables `eval_suites.select` picks (`eval_suites.SUITES`) with the
machinery of `jaxlm eval` (`evaluate.predict_faces`, `evaluate.prompts_for`)
and writes, into one folder:
  suite.md    one Markdown table per benchmark in the thesis's shape: rows
              its subsets, columns NME / FR@alpha / AUC@alpha per
              normaliser (and point set), the prompts used stated;
  suite.csv   the same numbers, one line per subset and column group;
  suite.json  the same, with each protocol's source and what was skipped;
  ced_<table>.png  the CED of each subset (the table's first normaliser);
  faces/<table>_<split>.npz  per face: pred, gt (NaN: no position), boxes,
              visible, in original-image pixels (to recompute any metric).
Each face runs the model once, whatever the number of normalisers and of
subsets it is in (a table's subsets share its full set's faces).
Tables whose TFDS data are not built are skipped with one logged line
saying how to build them.
"""

from __future__ import annotations

import csv
import io
import json
import logging
from pathlib import Path

import jax
import ml_collections
import numpy as np

from jaxlm import checkpoints
from jaxlm import config as config_lib
from jaxlm import eval_suites, evaluate, inference
from jaxlm import layouts as layouts_lib
from jaxlm import metrics, plots
from jaxlm.data import sources
from jaxlm.errors import JaxlmError

log = logging.getLogger('jaxlm')

POINTS = ('all', 'unoccluded', 'occluded')


def default_out_dir(checkpoint) -> Path:
  """`<run>/eval_suite`, or `<run>/eval_suite_<step>` for a step folder
  (beside `jaxlm eval`'s `eval` / `eval_<step>`)."""
  d = checkpoints.eval_dir(checkpoint)
  return d.parent / d.name.replace('eval', 'eval_suite', 1)


def evaluate_suite_checkpoint(checkpoint, spec: str, out_dir=None,
                              overrides=None, progress=True):
  """`jaxlm eval --suite SPEC`: the run (or step, or converted weights) on
  the suites of SPEC ('wflw,300w', 'all'), `--config.*` `overrides`
  applied (`data.data_dir`: where the TFDS datasets are built). Returns
  (report dict, predictor)."""
  tables = eval_suites.select(spec)  # an unknown name fails before loading
  pred = inference.Predictor(checkpoint)
  cfg = pred.config
  config_lib.expand_paths(config_lib.apply_overrides(cfg, overrides or {}))
  out_dir = Path(out_dir or default_out_dir(checkpoint))
  report = evaluate_suite(cfg, pred, tables, out_dir, progress=progress)
  report.update(checkpoint=str(checkpoint), step=int(pred.step), suite=spec)
  write_outputs(report, out_dir)
  return report, pred


def trained_prompts(table: eval_suites.Table, config, datasets):
  """The training dataset whose prompts `table` takes: built from one of
  `table.prompts_from` with the table's layout; None: zero-shot."""
  train = config.data.get('train', None) or {}
  want = layouts_lib.get(table.layout).num_points
  for name, n in datasets:
    entry = train.get(name, None)
    entry = entry.to_dict() if entry is not None else {}
    if entry.get('source', 'tfds') != 'tfds':
      continue
    builder = entry.get('tfds_name', name).partition('/')[0]
    layout = entry.get('layout')
    if builder in table.prompts_from and (
        layout == table.layout if layout else n == want):
      return name
  return None


def _not_built(tfds_name: str, splits, data_dir: str):
  """Why `tfds_name` cannot give `splits` under `data_dir`, or None."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  from jaxlm.data import tfds as _  # registers the builders  # noqa: F401
  where = data_dir or '(the TFDS default)'
  builder = tfds.builder(tfds_name, data_dir=data_dir or None)
  how = (f'build it with `jaxlm build {tfds_name} --manual_dir <downloaded '
         f'files> --data_dir {data_dir or "<dir>"}`')
  if not builder.is_prepared():
    return f'{tfds_name} is not built under {where}; {how}'
  missing = [s for s in splits if s not in builder.info.splits]
  if missing:
    return (f'{tfds_name} under {where} has no split {", ".join(missing)}; '
            f're-{how} --overwrite')
  return None


def _masks(faces: evaluate.Faces, points: str):
  has = faces.has_position
  return dict(all=has, unoccluded=has & faces.visible,
              occluded=has & ~faces.visible)[points]


def column_nmes(faces: evaluate.Faces, layout, metric: eval_suites.Metric,
                of='pred'):
  """Per-face NMEs (F,) of one column group (NaN: no point counted)."""
  norm = metrics.normaliser(faces.gt, layout, metric.normaliser, faces.boxes)
  return metrics.nme(getattr(faces, of), faces.gt, norm,
                     _masks(faces, metric.points))


class _Faces:
  """The faces `indices` of an evaluation source."""

  def __init__(self, source, indices):
    self.source, self.indices = source, list(indices)

  def __len__(self):
    return len(self.indices)

  def __getitem__(self, i):
    return self.source[self.indices[int(i)]]


FIELDS = ('pred', 'gt', 'baseline', 'boxes', 'visible')


def _predict_once(seen: dict, predict, variables, source, prompts, baseline,
                  size, batch, layout, desc, progress) -> evaluate.Faces:
  """`evaluate.predict_faces` over the faces of `source` not yet in `seen`
  (the subsets of a table share the faces of its full set: each face is
  run once), keyed by the stored record's photo and face box; returns
  every face of `source`, in order."""
  records = source.faces.source
  keys, new, pending = [], [], set()
  for i in range(len(source)):
    rec = records[i]
    k = (bytes(rec['image_path']), np.asarray(rec['box']).tobytes())
    keys.append(k)
    if k not in seen and k not in pending:
      pending.add(k)
      new.append(i)
  if new:
    got = evaluate.predict_faces(predict, variables, _Faces(source, new),
                                 prompts, baseline, size, batch, layout, 0,
                                 desc, progress)
    for j, i in enumerate(new):
      seen[keys[i]] = tuple(getattr(got, f)[j] for f in FIELDS)
  return evaluate.Faces(**{f: np.stack([seen[k][n] for k in keys])
                           for n, f in enumerate(FIELDS)}, overlays=[])


def evaluate_suite(config, predictor, tables, out_dir, progress=True) -> dict:
  """Evaluates `tables` ([(suite, eval_suites.Table)]) with a loaded
  `inference.Predictor`; writes the CED PNGs and per-face files into
  `out_dir`; returns {'tables': [...], 'skipped': [...]}
  (`write_outputs` writes suite.md / .csv / .json)."""
  out_dir = Path(out_dir)
  (out_dir / 'faces').mkdir(parents=True, exist_ok=True)
  size = config.data.image_size
  data_dir = config.data.get('data_dir', '')
  batch = config.eval.batch_size
  model, family = predictor.model, predictor.family
  variables, datasets = predictor.variables, predictor.datasets
  predict = jax.jit(inference.make_predict(model, family,
                                           with_uncertainty=False))
  done, skipped = [], []
  for suite, table in tables:
    trained = trained_prompts(table, config, datasets)
    why = _not_built(table.tfds_name, [r.split for r in table.rows],
                     data_dir)
    if why is None and trained is None:
      why = _not_built(table.calib_tfds_name, [table.calib[1]], data_dir)
      why = why and f'its zero-shot mean shape needs {why}'
    if why:
      log.info('suite %s: skipped %s: %s', suite, table.title, why)
      skipped.append(dict(suite=suite, table=table.name, title=table.title,
                          reason=why))
      continue
    layout = layouts_lib.get(table.layout)
    ecfgs = [ml_collections.ConfigDict(dict(
        source='tfds', tfds_name=table.tfds_name, split=row.split,
        layout=table.layout, prompts=trained or 'mean_shape',
        calib_tfds_name=table.calib_tfds_name, calib_split=table.calib[1]))
             for row in table.rows]
    try:  # one prompt set per table
      prompts, baseline, _ = evaluate.prompts_for(
          table.name, ecfgs[0], model, family, variables, datasets, size,
          config.data.mean_shape_samples, data_dir)
    except JaxlmError as e:  # e.g. a model of one layout only (SLPT)
      log.info('suite %s: skipped %s: %s', suite, table.title, e)
      skipped.append(dict(suite=suite, table=table.name, title=table.title,
                          reason=str(e)))
      continue
    np.save(out_dir / f'prompts_{table.name}.npy', prompts)
    rows, curves, seen = [], {}, {}
    for row, ecfg in zip(table.rows, ecfgs):
      source = sources.eval_source(
          sources.make_source(table.name, ecfg, size, data_dir))
      faces = _predict_once(seen, predict, variables, source, prompts,
                            baseline, size, batch, layout,
                            f'{table.title} {row.label}', progress)
      np.savez_compressed(
          out_dir / 'faces' / f'{table.name}_{row.split}.npz',
          pred=faces.pred, gt=faces.gt, baseline=faces.baseline,
          boxes=faces.boxes, visible=faces.visible)
      cols = {}
      for m in table.metrics:
        nmes = column_nmes(faces, layout, m)
        cols[m.label] = dict(normaliser=m.normaliser, points=m.points,
                             alpha=m.alpha, **metrics.summarize(nmes, m.alpha))
        if m is table.metrics[0]:
          curves[row.label] = nmes
      first = table.metrics[0]
      base = column_nmes(faces, layout, first, of='baseline')
      rows.append(dict(label=row.label, split=row.split, faces=len(source),
                       metrics=cols,
                       mean_shape_nme=float(np.nanmean(base))))
      log.info('%s %s (%s, %d faces, %s): %s', table.title, row.label,
               row.split, len(source),
               f'prompts of {trained}' if trained else 'zero-shot',
               ', '.join(f'{k} NME {100 * v["nme"]:.2f}%'
                         for k, v in cols.items()))
    first = table.metrics[0]
    plots.plot_ced(curves, out_dir / f'ced_{table.name}.png', first.alpha,
                   title=f'{table.title}: CED, {first.label} NME')
    done.append(dict(
        suite=suite, name=table.name, title=table.title,
        source=table.source, tfds_name=table.tfds_name, layout=table.layout,
        zero_shot=trained is None, prompts=trained or 'mean_shape',
        calib=(None if trained else
               f'{table.calib_tfds_name}:{table.calib[1]}'),
        rows=rows))
  if not done:
    log.info('no table of the suite could be evaluated (none built under '
             'data_dir %r)', data_dir)
  return dict(tables=done, skipped=skipped)


def _prompts_text(t):
  if t['zero_shot']:
    return f'zero-shot (the mean shape of {t["calib"]})'
  return f'trained ({t["prompts"]})'


def format_suite(report: dict) -> str:
  """suite.md: one table per benchmark, rows its subsets."""
  out = [f'# jaxlm eval --suite {report.get("suite", "")}', '',
         f'Checkpoint `{report.get("checkpoint", "")}`, step '
         f'{report.get("step", "")}. NME in original-image pixels / the '
         f'normaliser, in %; FR@α in %; AUC@α the CED\'s area on [0, α] / '
         f'α; mean-shape NME: predicting the prompt set\'s mean shape (first '
         f'normaliser).', '']
  for t in report['tables']:
    out += [f'## {t["title"]}', '',
            f'{t["source"]}. Prompts: {_prompts_text(t)}.', '']
    labels = list(t['rows'][0]['metrics'])
    head = ['subset', 'faces']
    for k in labels:
      a = t['rows'][0]['metrics'][k]['alpha']
      head += [f'{k} NME %', f'{k} FR@{a:g} %', f'{k} AUC@{a:g}']
    head.append('mean-shape NME %')
    out += ['| ' + ' | '.join(head) + ' |',
            '|' + '---|' * len(head)]
    for r in t['rows']:
      cells = [r['label'], str(r['faces'])]
      for k in labels:
        m = r['metrics'][k]
        cells += [f'{100 * m["nme"]:.2f}', f'{100 * m["fr"]:.2f}',
                  f'{m["auc"]:.4f}']
      cells.append(f'{100 * r["mean_shape_nme"]:.2f}')
      out.append('| ' + ' | '.join(cells) + ' |')
    out.append('')
  if report['skipped']:
    out += ['## Not evaluated', '']
    out += [f'* {s["title"]}: {s["reason"]}' for s in report['skipped']]
    out.append('')
  return '\n'.join(out)


CSV_FIELDS = ('suite', 'table', 'subset', 'split', 'prompts', 'faces',
              'column', 'normaliser', 'points', 'alpha', 'nme', 'fr', 'auc',
              'count')


def format_csv(report: dict) -> str:
  """suite.csv: one line per table, subset and column group."""
  buf = io.StringIO()
  w = csv.DictWriter(buf, CSV_FIELDS, lineterminator='\n')
  w.writeheader()
  for t in report['tables']:
    for r in t['rows']:
      for k, m in r['metrics'].items():
        w.writerow(dict(suite=t['suite'], table=t['name'],
                        subset=r['label'], split=r['split'],
                        prompts='zero-shot' if t['zero_shot'] else
                        t['prompts'], faces=r['faces'], column=k,
                        **{f: m[f] for f in ('normaliser', 'points', 'alpha',
                                             'nme', 'fr', 'auc', 'count')}))
  return buf.getvalue()


def write_outputs(report: dict, out_dir):
  out_dir = Path(out_dir)
  if not report['tables'] and not report['skipped']:
    raise JaxlmError('eval --suite: nothing to evaluate')
  (out_dir / 'suite.md').write_text(format_suite(report))
  (out_dir / 'suite.csv').write_text(format_csv(report))
  (out_dir / 'suite.json').write_text(json.dumps(report, indent=2))
