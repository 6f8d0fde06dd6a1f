"""3D query tables: each layout's landmarks as points of the canonical face.

The 3D-query families (paper 002) are prompted with points of a canonical
3D face (`data/synthetic/canonical.py`: head coordinates of the reference
identity C, x right, y down, z towards the camera, half-width about 1).
Each training dataset's layout has one (N, 3) table, defined once:

  synthetic layouts (syn98, syn68, syn29, syn19, syndense): their exact
    points on C, with their annotation conventions (computed);
  real layouts: the points their annotation guides describe, on C's
    feature curves without any synthetic convention (WFLW-98 as syn98,
    300W-68 and MERL-RAV-68 as syn68 (the iBUG scheme), COFW-29 as syn29,
    AFLW-19 as syn19, CelebA-5: pupils, nose tip, mouth corners), shipped
    as `<layout>.npy` and written by `python -m
    jaxlm.data.query_tables.make_tables` (tests check the files against it).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from jaxlm import layouts as layouts_lib
from jaxlm.data.synthetic import canonical
from jaxlm.errors import JaxlmError

HERE = Path(__file__).resolve().parent

# real layout -> the synthetic layout whose semantics it shares (None: its
# curve points are listed in make_tables.CURVE_POINTS)
REAL_LAYOUTS = {'wflw98': 'syn98', '300w68': 'syn68', 'merlrav68': 'syn68',
                'cofw29': 'syn29', 'aflw19': 'syn19', 'celeba5': None}


def known_layouts() -> tuple[str, ...]:
  from jaxlm.data import synthetic  # pylint: disable=g-import-not-at-top
  return tuple(synthetic.SYNTHETIC_LAYOUTS) + tuple(REAL_LAYOUTS)


def layout_queries(layout: str, semantic: bool = False) -> np.ndarray:
  """(N, 3) float32 canonical 3D queries of `layout`'s landmarks.

  With `semantic`, a synthetic layout's points lie exactly on C's feature
  curves, without its annotation convention (as the real layouts' tables
  are made): the tables a query deformer starts from, with each dataset's
  convention left for it to learn (`data.semantic_queries`)."""
  if layout in REAL_LAYOUTS:
    path = HERE / f'{layout}.npy'
    try:
      table = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
      raise JaxlmError(f'cannot read the 3D query table {path}: {e} '
                       f'(`python -m jaxlm.data.query_tables.make_tables` '
                       f'writes it)') from None
    n = layouts_lib.get(layout).num_points
    if table.shape != (n, 3):
      raise JaxlmError(f'{path}: shape {table.shape}, expected ({n}, 3)')
    return table.astype(np.float32)
  try:
    if semantic:
      return canonical.layout_queries(layout, convention=False).canonical()
    return canonical.layout_queries(layout).canonical()
  except KeyError:
    raise JaxlmError(f'no 3D query table for layout {layout!r} (known: '
                     f'{", ".join(known_layouts())}); pass an (N, 3) .npy '
                     f'file of canonical points instead') from None


def queries_table(layouts, semantic: bool = False) -> np.ndarray:
  """(sum N_i, 3) tables of `layouts`, concatenated in order (the layout
  of the training datasets' point table)."""
  return np.concatenate([layout_queries(l, semantic) for l in layouts],
                        axis=0)
