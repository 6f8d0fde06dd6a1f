"""`jaxlm build`: one TFDS face dataset from the files the user downloaded."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from etils import epath

from jaxlm.data.formats import FormatError
from jaxlm.data.tfds import BUILDERS
from jaxlm.errors import JaxlmError

log = logging.getLogger('jaxlm')


def build_dataset(spec: str, manual_dir, data_dir, skip_bad: bool = False,
                  overwrite: bool = False) -> dict:
  """Builds `spec` ('wflw', 'w300/private', ...) into `data_dir`.

  A bad face stops the build with its file and line named (FormatError),
  unless `skip_bad`, which skips it and lists it in `build_report.json`.
  Returns the report (also written next to the built files), or None when
  the dataset is already built and not `overwrite`.
  """
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  name, _, config = spec.partition('/')
  if name not in BUILDERS:
    raise JaxlmError(f'unknown dataset {name!r}; known: '
                     f'{", ".join(sorted(BUILDERS))}')
  cls = BUILDERS[name]
  configs = [c.name for c in cls.BUILDER_CONFIGS]
  if config and config not in configs:
    raise JaxlmError(f'{name} has no config {config!r}; known: '
                     f'{", ".join(configs)}')
  manual_dir = Path(manual_dir).expanduser()
  if not manual_dir.is_dir() or not any(manual_dir.iterdir()):
    raise JaxlmError(f'--manual_dir {manual_dir}: missing or empty. '
                     f'{cls.MANUAL_DOWNLOAD_INSTRUCTIONS}')
  data_dir = os.path.expandvars(os.path.expanduser(str(data_dir)))
  final = cls(config=config or None, data_dir=data_dir, skip_bad=skip_bad)
  if final.is_prepared() and not overwrite:
    log.info('%s is already built at %s (--overwrite to rebuild)', spec,
             final.data_path)
    return None
  # Build into a temporary data dir next to the real one and swap it in
  # only when complete: a failed build (or --overwrite with a bad source)
  # leaves what was there, and no half-written folders.
  tmp_root = epath.Path(data_dir) / f'.building-{name}-{os.getpid()}'
  if tmp_root.exists():
    tmp_root.rmtree()
  builder = cls(config=config or None, data_dir=str(tmp_root),
                skip_bad=skip_bad)
  log.info('building %s/%s from %s into %s', name, builder.builder_config.name,
           manual_dir, data_dir)
  try:
    try:
      builder.download_and_prepare(
          download_config=tfds.download.DownloadConfig(
              manual_dir=str(manual_dir),
              compute_stats=tfds.download.ComputeStatsMode.SKIP))
    except FormatError as e:
      raise JaxlmError(f'{e}; nothing was written to {data_dir}') from None
    except AssertionError as e:  # TFDS: 'No examples were yielded.'
      if 'No examples' not in str(e):
        raise
      raise JaxlmError(f'{spec}: {str(e).splitlines()[0]} from {manual_dir} '
                       f'(empty annotations, or every face bad); nothing was '
                       f'written to {data_dir}') from None
    empty = [k for k, v in builder.info.splits.items() if not v.num_examples]
    if empty:
      raise JaxlmError(f'{spec}: no face of split {", ".join(empty)} could be '
                       f'built from {manual_dir} (empty annotations, or every '
                       f'face bad); nothing was written to {data_dir}')
    _swap_in(epath.Path(str(builder.data_path)),
             epath.Path(str(final.data_path)))
  finally:
    if tmp_root.exists():
      tmp_root.rmtree()
  splits = {k: v.num_examples for k, v in builder.info.splits.items()}
  report = dict(dataset=name, config=builder.builder_config.name,
                manual_dir=str(manual_dir), data_path=str(final.data_path),
                splits=splits,
                skipped={k: v for k, v in builder.skipped.items() if v})
  path = epath.Path(str(final.data_path)) / 'build_report.json'
  path.write_text(json.dumps(report, indent=2))
  n_skipped = sum(len(v) for v in builder.skipped.values())
  log.info('built %s: %s; skipped %d bad faces; report %s', spec,
           ', '.join(f'{k} {v}' for k, v in splits.items()), n_skipped, path)
  return report


def _swap_in(built: epath.Path, final: epath.Path):
  """Moves a complete build to `final`, replacing what was there only once
  the new one is in place."""
  final.parent.mkdir(parents=True, exist_ok=True)
  old = final.parent / f'.{final.name}.replaced-{os.getpid()}'
  if final.exists():
    final.rename(old)
  try:
    built.rename(final)
  except BaseException:
    if old.exists():
      old.rename(final)
    raise
  if old.exists():
    old.rmtree()
