"""The synthetic face's public geometry: a canonical face C and its queries.

Every point of the synthetic face is defined for every identity, so a model
prompted with points of a *canonical* 3D face (the 3D-query families, paper
002 §3) can be measured exactly on any rendered face. Spaces:

  surface coordinates (u, v): `template.surface(u, v, face)`; u across the
    face (0 on the midline, about ±1 at the ears), v down it (0 near the
    eyes, about 1 at the chin);
  canonical 3D space: head coordinates of the reference identity
    `CANONICAL` (x right, y down, z towards the camera; the face's
    half-width is about 1), the space of the queries a model is prompted
    with;
  a point off the surface: a surface point moved `depth` along the inward
    normal (depth > 0 is behind the skin), in head half-widths.

`Queries` are lists of points defined on every face: layout landmarks
(their curve points, with the layout's annotation convention), points along
a feature curve, and surface points (u, v, depth) of C. Curve points keep
their meaning exactly on every identity (the curve's parameter); a surface
point of C follows the face through `warp_uv`, a thin-plate spline through
the feature curves, so a dense point on C's eye corner stays on every face's
eye corner. `Queries.canonical()` gives the (N, 3) canonical queries;
`SyntheticFaces.project_queries(i, queries)` their exact pixels and
self-occlusion flags on item i.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np

from jaxlm import layouts as layouts_lib
from jaxlm.data.synthetic import render as render_lib
from jaxlm.data.synthetic import template as T

# The reference identity: mid-range proportions, eyes open and the mouth
# slightly open, so eyelid and inner-lip points stay distinct in 3D.
CANONICAL = T.FaceParams(
    height=1.325, depth=1.0, taper=0.275, eye_x=0.31, eye_y=-0.07,
    eye_w=0.1, eye_h=0.0425, eye_open=0.9, gaze=(0.0, 0.0), iris_r=0.04,
    brow_y=-0.205, brow_arch=0.03, brow_in=0.085, brow_out=0.465,
    brow_thick=0.035, nose_tip=0.25, nose_base=0.295, nose_w=0.105,
    nose_h=0.24, mouth_y=0.51, mouth_w=0.19, lip_up=0.035, lip_low=0.0425,
    mouth_open=0.06, smile=0.01, chin_v=0.935, jaw_w=0.91, jaw_top=-0.01,
    jaw_square=2.6)

# The region of C that dense queries are drawn from (surface coordinates):
# the front of the face from the forehead to just inside the jaw line.
DENSE_U = 0.8
DENSE_V_TOP = -0.45
DENSE_JAW_MARGIN = 0.03


def points_3d(uv, depth, face: T.FaceParams) -> np.ndarray:
  """(N, 3) head coordinates of surface points (N, 2) moved `depth` (N,)
  along the inward normal of `face`."""
  uv = np.asarray(uv, np.float64).reshape(-1, 2)
  p = T.surface(uv[:, 0], uv[:, 1], face)
  depth = np.broadcast_to(np.asarray(depth, np.float64), (len(uv),))
  if np.any(depth):
    p = p - depth[:, None] * render_lib.surface_normals(uv[:, 0], uv[:, 1],
                                                        face)
  return p


# ----------------------------------------------------------------------------
# The feature-preserving warp of surface coordinates.

_CURVE_SAMPLES = [('jaw', 0, np.linspace(-1, 1, 17))]
for _side in (-1, 1):
  _CURVE_SAMPLES += [('brow_upper', _side, np.linspace(0, 1, 5)),
                     ('brow_lower', _side, np.linspace(0.2, 0.8, 3)),
                     ('eye', _side, np.arange(8) * np.pi / 4),
                     ('pupil', _side, np.zeros(1))]
_CURVE_SAMPLES += [('nose_bridge', 0, np.linspace(0, 1, 4)),
                   ('nose_base', 0, np.linspace(-1, 1, 5))]
_CURVE_SAMPLES += [(c, 0, np.linspace(-1, 1, 7)) for c in (
    'lip_outer_upper', 'lip_inner_upper', 'lip_inner_lower',
    'lip_outer_lower')]
# Fixed anchors away from the features: the crown and the sides of the head
# do not move between identities.
_FIXED_UV = np.array([[u, v] for u in (-1.2, -0.6, 0.0, 0.6, 1.2)
                      for v in (-1.3, -0.8)] + [[-1.2, 0.4], [1.2, 0.4]])


def curve_uv(face: T.FaceParams, curve: str, side: int, ts) -> np.ndarray:
  """(len(ts), 2) surface coordinates of a feature curve of `face` at
  parameters ts (see the curve functions of `template`; side -1 is the
  feature at the image's left, 0 for the midline curves)."""
  fn = T._CURVES[curve]  # pylint: disable=protected-access
  ts = np.atleast_1d(np.asarray(ts, np.float64))
  if curve == 'pupil':
    u, v = fn(face, side)
    return np.broadcast_to(np.array([u, v], np.float64), (len(ts), 2)).copy()
  u, v = fn(face, side, ts) if curve in T._SIDED else fn(face, ts)  # pylint: disable=protected-access
  return np.stack(np.broadcast_arrays(u, v), -1)


def _control_points(face: T.FaceParams) -> np.ndarray:
  parts = [curve_uv(face, c, s, ts) for c, s, ts in _CURVE_SAMPLES]
  return np.concatenate(parts + [_FIXED_UV])


def _tps_kernel(r2):
  return np.where(r2 > 0, 0.5 * r2 * np.log(np.maximum(r2, 1e-300)), 0.0)


class _ThinPlate:
  """The 2D thin-plate spline through control points src -> dst."""

  def __init__(self, src, dst, smoothing: float = 1e-6):
    n = len(src)
    k = _tps_kernel(((src[:, None] - src[None]) ** 2).sum(-1))
    p = np.concatenate([np.ones((n, 1)), src], axis=1)
    a = np.zeros((n + 3, n + 3))
    a[:n, :n] = k + smoothing * np.eye(n)
    a[:n, n:], a[n:, :n] = p, p.T
    b = np.zeros((n + 3, 2))
    b[:n] = dst
    self.src, self.coef = src, np.linalg.solve(a, b)

  def __call__(self, x):
    n = len(self.src)
    k = _tps_kernel(((x[:, None] - self.src[None]) ** 2).sum(-1))
    p = np.concatenate([np.ones((len(x), 1)), x], axis=1)
    return k @ self.coef[:n] + p @ self.coef[n:]


_CANONICAL_CONTROL = _control_points(CANONICAL)


def warp_uv(uv_canonical, face: T.FaceParams) -> np.ndarray:
  """Surface coordinates (N, 2) on C -> the same points of `face`.

  A thin-plate spline through the feature curves (jaw, brows, eyes, pupils,
  nose, lips) and fixed anchors at the crown and the sides of the head:
  semantically consistent across identities (a point of C's lower eyelid
  lands on `face`'s lower eyelid), the identity on C itself.
  """
  uv = np.asarray(uv_canonical, np.float64).reshape(-1, 2)
  if face == CANONICAL:
    return uv.copy()
  return _ThinPlate(_CANONICAL_CONTROL, _control_points(face))(uv)


# ----------------------------------------------------------------------------
# Queries.


@dataclasses.dataclass(frozen=True)
class Queries:
  """Points defined on every synthetic face.

  parts: ((uv_of(face) -> (n, 2) surface coordinates, depth (n,)), ...).
  Build them with `layout_queries`, `curve_queries`, `surface_queries`,
  and join them with `+`.
  """
  parts: tuple[tuple[Callable[[T.FaceParams], np.ndarray], np.ndarray], ...]

  def __len__(self) -> int:
    return int(sum(len(d) for _, d in self.parts))

  def __add__(self, other: 'Queries') -> 'Queries':
    return Queries(self.parts + other.parts)

  def uv_on(self, face: T.FaceParams) -> np.ndarray:
    """(N, 2) surface coordinates of the points on `face`."""
    return np.concatenate([np.asarray(fn(face), np.float64).reshape(-1, 2)
                           for fn, _ in self.parts])

  @property
  def depth(self) -> np.ndarray:
    """(N,) depth behind the surface, head half-widths."""
    return np.concatenate([d for _, d in self.parts])

  def points_on(self, face: T.FaceParams) -> np.ndarray:
    """(N, 3) head coordinates of the points on `face`."""
    return points_3d(self.uv_on(face), self.depth, face)

  def canonical(self) -> np.ndarray:
    """(N, 3) float32 canonical 3D queries (the points on C)."""
    return self.points_on(CANONICAL).astype(np.float32)


def layout_queries(layout: str, convention: bool = True) -> Queries:
  """The landmarks of a synthetic layout (syn98, syn68, syn29, syn19,
  syndense), with its annotation convention (or, `convention=False`,
  exactly on the feature curves; the dense layout has none)."""
  layouts_lib.get(layout)  # KeyError listing the known layouts
  if layout in DENSE_LAYOUTS:
    uv = dense_layout_uv(layout)
    return Queries(((lambda f: warp_uv(uv, f), np.zeros(len(uv))),))
  return Queries(((lambda f: T.layout_uv(layout, f, convention),
                   np.zeros(layouts_lib.get(layout).num_points)),))


def curve_queries(curve: str, side: int, ts, depth: float = 0.0) -> Queries:
  """Points along a feature curve at parameters ts (e.g. 65 jaw points:
  `curve_queries('jaw', 0, np.linspace(-1, 1, 65))`), exact on every
  face."""
  if curve not in T._CURVES:  # pylint: disable=protected-access
    raise KeyError(f'unknown curve {curve!r}; known: '
                   f'{", ".join(T._CURVES)}')  # pylint: disable=protected-access
  ts = np.atleast_1d(np.asarray(ts, np.float64))
  return Queries(((lambda f: curve_uv(f, curve, side, ts),
                   np.full(len(ts), float(depth))),))


def surface_queries(uv, depth=0.0) -> Queries:
  """Points (u, v) of C, `depth` behind its surface, carried to every face
  by `warp_uv`."""
  uv = np.asarray(uv, np.float64).reshape(-1, 2)
  depth = np.broadcast_to(np.asarray(depth, np.float64), (len(uv),)).copy()
  return Queries(((lambda f: warp_uv(uv, f), depth),))


def in_dense_region(uv) -> np.ndarray:
  """(N,) bool: inside the front-of-face region of C dense queries use."""
  uv = np.asarray(uv, np.float64).reshape(-1, 2)
  jaw = T.jaw_v_at(CANONICAL, uv[:, 0]) - DENSE_JAW_MARGIN
  return ((np.abs(uv[:, 0]) <= DENSE_U) & (uv[:, 1] >= DENSE_V_TOP) &
          (uv[:, 1] <= jaw))


def random_surface_uv(num: int, seed: int) -> np.ndarray:
  """`num` surface coordinates drawn uniformly from C's dense region."""
  rng = np.random.default_rng(seed)
  out = np.zeros((0, 2))
  while len(out) < num:
    uv = np.stack([rng.uniform(-DENSE_U, DENSE_U, 2 * num),
                   rng.uniform(DENSE_V_TOP, CANONICAL.chin_v, 2 * num)], -1)
    out = np.concatenate([out, uv[in_dense_region(uv)]])
  return out[:num]


def grid_uv(step: float) -> np.ndarray:
  """A regular grid of C's dense region with spacing `step` (u, v units):
  step 0.032 gives 2,000 points."""
  u = np.arange(-DENSE_U, DENSE_U + 1e-9, step)
  v = np.arange(DENSE_V_TOP, CANONICAL.chin_v, step)
  uv = np.stack(np.meshgrid(u, v), -1).reshape(-1, 2)
  return uv[in_dense_region(uv)]


# Dense training layouts: syn98's outer eye corners and pupils (points 0-3,
# so the inter-ocular and inter-pupil normalisers work as for every layout)
# and then random points of C's dense region, a fixed draw.
DENSE_LAYOUTS = {'syndense': 2048}
_DENSE_SEED = 20230618


def dense_layout_uv(layout: str) -> np.ndarray:
  """(N, 2) surface coordinates on C of a dense layout's points."""
  n = DENSE_LAYOUTS[layout]
  spec = layouts_lib.get('syn98')
  fixed = list(spec.outer_eye_corners) + [p[0] for p in spec.pupils]
  uv = T.layout_uv('syn98', CANONICAL)[fixed]
  return np.concatenate([uv, random_surface_uv(n - len(fixed), _DENSE_SEED)])


def layout_uv(layout: str, face: T.FaceParams) -> np.ndarray:
  """Surface coordinates (N, 2) of any synthetic layout on `face`."""
  if layout in DENSE_LAYOUTS:
    return warp_uv(dense_layout_uv(layout), face)
  return T.layout_uv(layout, face)
