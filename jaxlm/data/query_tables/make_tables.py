"""Writes the shipped 3D query tables of the real layouts.

  python -m jaxlm.data.query_tables.make_tables [--check]

Each real layout's points are its annotation guide's points on the feature
curves of the canonical face C, without the synthetic layouts' annotation
conventions (`template.layout_uv(..., convention=False)`), lifted to 3D by
the surface of C. `--check` compares the files with what would be written.
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from jaxlm import layouts as layouts_lib
from jaxlm.data.query_tables import HERE, REAL_LAYOUTS
from jaxlm.data.synthetic import canonical
from jaxlm.data.synthetic import template as T

# Layouts without a synthetic twin: (curve, side, parameter) per landmark.
CURVE_POINTS = {
    'celeba5': [('pupil', -1, 0.0), ('pupil', 1, 0.0),
                ('nose_bridge', 0, 1.0), ('lip_outer_upper', 0, -1.0),
                ('lip_outer_upper', 0, 1.0)],
}


def table(layout: str) -> np.ndarray:
  twin = REAL_LAYOUTS[layout]
  if twin is None:
    uv = np.concatenate([canonical.curve_uv(canonical.CANONICAL, c, s, [t])
                         for c, s, t in CURVE_POINTS[layout]])
  else:
    uv = T.layout_uv(twin, canonical.CANONICAL, convention=False)
  assert len(uv) == layouts_lib.get(layout).num_points, layout
  return canonical.points_3d(uv, 0.0, canonical.CANONICAL).astype(np.float32)


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--check', action='store_true',
                      help='compare the shipped files, write nothing')
  args = parser.parse_args(argv)
  stale = []
  index = {}
  for layout in REAL_LAYOUTS:
    t = table(layout)
    path = HERE / f'{layout}.npy'
    index[layout] = dict(
        points=len(t), file=path.name,
        semantics=REAL_LAYOUTS[layout] or 'make_tables.CURVE_POINTS')
    if args.check:
      if not path.is_file() or not np.allclose(np.load(path), t, atol=1e-6):
        stale.append(path.name)
    else:
      np.save(path, t)
  if args.check:
    print('stale: ' + ', '.join(stale) if stale else 'tables up to date')
    return 1 if stale else 0
  (HERE / 'tables.json').write_text(json.dumps(index, indent=2) + '\n')
  print(f'wrote {len(index)} tables to {HERE}')
  return 0


if __name__ == '__main__':
  sys.exit(main())
