"""`jaxlm annotate --table csv|parquet`: the JSON-lines records as a table,
one row per record (a face, or a frame without one).

Columns, in this order (a column missing from a record is empty / null):
  source, frame, face, track, error, score, box_x0, box_y0, box_x1, box_y1
  x_0 .. x_{N-1}, y_0 .. y_{N-1}      landmarks, image pixels (OpenFace's
                                      naming)
  ux_i, uy_i                          uncertainty (families with one)
  sx_i, sy_i                          the One-Euro smoothed landmarks
  then what the family describes, flattened: nested keys joined by '_'
  (head_pose_yaw), arrays by their flat index (landmarks_3d_0 ..).

Parquet needs pyarrow (`pip install pyarrow`). Tables are rewritten whole
from the records file at the end of a run, through a temporary file, so a
killed run never leaves a half-written table.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import numpy as np

from jaxlm.errors import JaxlmError

FORMATS = ('csv', 'parquet')
_FIRST = ('source', 'frame', 'face', 'track', 'error', 'score')
_POINTS = {'landmarks': '', 'uncertainty': 'u', 'smoothed': 's'}


def _flatten(prefix: str, value, row: dict):
  if isinstance(value, dict):
    for k, v in value.items():
      _flatten(f'{prefix}_{k}', v, row)
  elif isinstance(value, (list, tuple)):
    for i, v in enumerate(np.ravel(np.asarray(value, dtype=object))):
      row[f'{prefix}_{i}'] = v
  else:
    row[prefix] = value


def record_row(rec: dict) -> dict:
  """One record as a flat {column: value} row (see the module docstring)."""
  row = {k: rec.get(k) for k in _FIRST}
  box = rec.get('box')
  for i, name in enumerate(('box_x0', 'box_y0', 'box_x1', 'box_y1')):
    row[name] = None if box is None else box[i]
  for key, p in _POINTS.items():
    if rec.get(key) is not None:
      pts = np.asarray(rec[key], np.float64)
      row.update({f'{p}x_{i}': float(v) for i, v in enumerate(pts[:, 0])})
      row.update({f'{p}y_{i}': float(v) for i, v in enumerate(pts[:, 1])})
  for key, value in rec.items():
    if key not in row and key not in _POINTS and key != 'box':
      _flatten(key, value, row)
  return row


def _columns(rows: list[dict]) -> list[str]:
  """The rows' columns in the documented order: the fixed ones, then x_i,
  y_i, ux_i, uy_i, sx_i, sy_i, then the family's in first-seen order."""
  seen = dict.fromkeys(_FIRST + ('box_x0', 'box_y0', 'box_x1', 'box_y1'))
  for row in rows:
    seen.update(dict.fromkeys(row))
  n = max((int(c[2:]) + 1 for c in seen if c.startswith('x_')), default=0)
  points = [f'{p}{c}_{i}' for p in _POINTS.values() for c in 'xy'
            for i in range(n)]
  points = [c for c in points if c in seen]
  fixed = list(seen)[:10]
  rest = [c for c in seen if c not in points and c not in fixed]
  return fixed + points + rest


def read_records(path) -> list[dict]:
  path = Path(path)
  out = []
  with open(path, encoding='utf-8') as f:
    for n, line in enumerate(f, 1):
      try:
        out.append(json.loads(line))
      except ValueError as e:
        raise JaxlmError(f'{path}:{n}: not a JSON record ({e})') from None
  return out


def check_formats(formats) -> tuple[str, ...]:
  """`formats` as a tuple, or one error naming an unknown format (or
  parquet without pyarrow)."""
  formats = tuple(formats)
  unknown = [f for f in formats if f not in FORMATS]
  if unknown:
    raise JaxlmError(f'--table {unknown[0]!r}: expected one of '
                     f'{", ".join(FORMATS)}')
  if 'parquet' in formats:
    try:
      import pyarrow  # pylint: disable=g-import-not-at-top,unused-import
    except ImportError:
      raise JaxlmError('--table parquet needs pyarrow: pip install '
                       'pyarrow') from None
  return formats


def write_tables(records_path, formats) -> list[Path]:
  """Writes records_path's records as <stem>.csv / <stem>.parquet beside it
  (`formats` a subset of FORMATS); returns the paths written."""
  formats = tuple(dict.fromkeys(check_formats(formats)))
  records_path = Path(records_path)
  rows = [record_row(r) for r in read_records(records_path)]
  columns = _columns(rows)
  written = []
  for fmt in formats:
    path = records_path.with_suffix('.' + fmt)
    tmp = path.with_name(f'.{path.name}.tmp{os.getpid()}')
    try:
      if fmt == 'csv':
        with open(tmp, 'w', newline='', encoding='utf-8') as f:
          writer = csv.DictWriter(f, columns, restval='')
          writer.writeheader()
          writer.writerows({k: '' if v is None else v for k, v in r.items()}
                           for r in rows)
      else:
        import pyarrow as pa  # pylint: disable=g-import-not-at-top
        import pyarrow.parquet as pq  # pylint: disable=g-import-not-at-top
        try:
          table = pa.Table.from_pylist(
              [{c: r.get(c) for c in columns} for r in rows])
        except (pa.ArrowInvalid, pa.ArrowTypeError) as e:
          raise JaxlmError(f'{records_path}: the records do not make one '
                           f'Parquet table ({e})') from None
        pq.write_table(table, tmp)
      os.replace(tmp, path)
    finally:
      tmp.unlink(missing_ok=True)
    written.append(path)
  return written
