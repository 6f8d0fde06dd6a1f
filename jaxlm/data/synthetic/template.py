"""A canonical 3D face as a continuous surface, and landmark layouts on it.

The surface is a deformed ellipsoid parametrised by *surface coordinates*
(u, v): u runs across the face (0 on the midline, about ±1 at the ears),
v runs down it (about -1.3 at the crown, 0 near the eyes, about 1 at the chin).
`surface(u, v, face)` returns 3D head coordinates (x right, y down, z towards
the camera; the face's half-width is about 1). Any (u, v) can be queried, so
any point of the face has an exactly known position in every rendered image.

Facial features are curves in (u, v) whose shape depends on the sampled
identity and expression (`FaceParams`). A landmark layout is a list of points
on those curves, one (curve, parameter) pair per landmark, plus a small
per-layout *convention offset* per group, in (u, v) units, that mimics how
WFLW, 300W, COFW and AFLW annotators place "the same" point differently
(thesis §6.2.2: e.g. COFW's eye corners sit above WFLW's).
"""

from __future__ import annotations

import collections
import dataclasses

import numpy as np

from jaxlm import layouts as layouts_lib

# ----------------------------------------------------------------------------
# Identity and expression.


@dataclasses.dataclass(frozen=True)
class FaceParams:
  """Identity and expression of one face, in surface units."""
  height: float  # head half-height factor (ellipsoid B)
  depth: float  # head depth factor (ellipsoid C)
  taper: float  # how much the lower face narrows towards the chin
  eye_x: float  # |u| of the eye centres
  eye_y: float  # v of the eye centres
  eye_w: float  # eye half-width in u
  eye_h: float  # upper-lid height in v at full opening
  eye_open: float  # 0 (closed) .. ~1.1 (wide)
  gaze: tuple[float, float]  # iris offset in (u, v)
  iris_r: float
  brow_y: float  # v of the brow's lower edge at its middle
  brow_arch: float
  brow_in: float  # |u| of the inner brow end
  brow_out: float  # |u| of the outer brow end
  brow_thick: float
  nose_tip: float  # v of the nose tip
  nose_base: float  # v of the nose base (subnasale)
  nose_w: float  # half-width of the nose base in u
  nose_h: float  # nose protrusion
  mouth_y: float
  mouth_w: float  # mouth half-width in u
  lip_up: float  # upper lip thickness
  lip_low: float  # lower lip thickness
  mouth_open: float  # gap between the inner lips
  smile: float  # corner lift (positive = up)
  chin_v: float
  jaw_w: float  # |u| where the jaw contour starts (ear level)
  jaw_top: float  # v where the jaw contour starts
  jaw_square: float  # superellipse exponent of the jaw contour


def sample_face_params(rng: np.random.Generator) -> FaceParams:
  """Draws an identity and an expression."""
  u = rng.uniform
  eye_y = u(-0.12, -0.02)
  eye_x = u(0.27, 0.35)
  eye_w = u(0.085, 0.115)
  blink = rng.random() < 0.08
  nose_tip = u(0.2, 0.3)
  mouth_open = u(0.0, 0.14) if rng.random() < 0.4 else 0.0
  return FaceParams(
      height=u(1.2, 1.45), depth=u(0.9, 1.1), taper=u(0.15, 0.4),
      eye_x=eye_x, eye_y=eye_y, eye_w=eye_w, eye_h=u(0.035, 0.05),
      eye_open=u(0.05, 0.25) if blink else u(0.6, 1.1),
      gaze=(u(-0.025, 0.025), u(-0.01, 0.01)), iris_r=u(0.035, 0.045),
      brow_y=eye_y - u(0.1, 0.15) - u(-0.01, 0.03),
      brow_arch=u(0.015, 0.045), brow_in=u(0.06, 0.11),
      brow_out=eye_x + eye_w + u(0.03, 0.08), brow_thick=u(0.025, 0.045),
      nose_tip=nose_tip, nose_base=nose_tip + u(0.035, 0.055),
      nose_w=u(0.085, 0.125), nose_h=u(0.18, 0.3),
      mouth_y=nose_tip + u(0.22, 0.3), mouth_w=u(0.15, 0.23),
      lip_up=u(0.025, 0.045), lip_low=u(0.03, 0.055),
      mouth_open=mouth_open, smile=u(-0.02, 0.04),
      chin_v=nose_tip + u(0.62, 0.75), jaw_w=u(0.86, 0.96),
      jaw_top=u(-0.06, 0.04), jaw_square=u(2.0, 3.2))


# ----------------------------------------------------------------------------
# The surface.

U_TO_THETA = 1.3  # longitude per unit of u
V_TO_PHI = 1.05  # latitude per unit of v


def _bump(d2: np.ndarray) -> np.ndarray:
  return np.exp(-0.5 * d2)


def surface(u: np.ndarray, v: np.ndarray, f: FaceParams) -> np.ndarray:
  """3D head coordinates (..., 3) of surface coordinates (u, v)."""
  u = np.asarray(u, np.float64)
  v = np.asarray(v, np.float64)
  theta = u * U_TO_THETA
  phi = v * V_TO_PHI
  x = np.sin(theta) * np.cos(phi)
  y = f.height * np.sin(phi)
  z = f.depth * np.cos(theta) * np.cos(phi)
  # Lower face narrows towards the chin.
  low = np.clip((v - 0.1) / max(f.chin_v - 0.1, 1e-3), 0.0, 1.2)
  x = x * (1.0 - f.taper * low**2)
  # Relief, displaced along z (towards the camera in the canonical pose).
  au = np.abs(u)
  ridge = np.clip((v - f.eye_y + 0.06) / (f.nose_tip - f.eye_y + 0.06), 0, 1)
  below_tip = np.clip((v - f.nose_tip) / (f.nose_base - f.nose_tip + 1e-3), 0,
                      None)
  ridge = ridge**1.5 * np.exp(-2.5 * below_tip**2)
  nose_sigma = 0.045 + 0.07 * ridge
  dz = f.nose_h * ridge * _bump((u / nose_sigma)**2)
  dz -= 0.07 * _bump(((au - f.eye_x) / 0.15)**2 + ((v - f.eye_y) / 0.1)**2)
  dz += 0.045 * _bump(((v - f.brow_y) / 0.05)**2) * (au < 0.6)
  dz += 0.05 * _bump((u / (f.mouth_w * 1.1))**2 +
                     ((v - f.mouth_y) / 0.08)**2)
  dz += 0.07 * _bump((u / 0.22)**2 + ((v - f.chin_v + 0.1) / 0.1)**2)
  dz += 0.03 * _bump(((au - 0.45) / 0.15)**2 + ((v - f.nose_tip) / 0.15)**2)
  return np.stack([x, y, z + dz], axis=-1)


# ----------------------------------------------------------------------------
# Feature curves. Each returns (u, v) arrays for parameters t; `side` is -1 for
# the feature at the image's left (the subject's right) and +1 for the other.


def jaw(f: FaceParams, t):
  """t in [-1, 1]: image-left ear level (-1), chin (0), image-right (1)."""
  t = np.asarray(t, np.float64)
  a = t * np.pi / 2
  e = 2.0 / f.jaw_square
  s, c = np.sin(a), np.cos(a)
  u = f.jaw_w * np.sign(s) * np.abs(s)**e
  v = f.jaw_top + (f.chin_v - f.jaw_top) * np.abs(c)**e
  return u, v


def jaw_v_at(f: FaceParams, u):
  """The jaw contour's v at a given u (the face's lower boundary)."""
  r = np.clip(np.abs(u) / f.jaw_w, 0.0, 1.0)
  e = 2.0 / f.jaw_square
  # invert u = w * s**e -> s = r**(1/e); c = sqrt(1 - s^2)
  s = r**(1.0 / e)
  c = np.sqrt(np.clip(1 - s**2, 0, 1))
  return f.jaw_top + (f.chin_v - f.jaw_top) * c**e


def brow_upper(f: FaceParams, side, t):
  """t in [0, 1]: outer end (0) to inner end (1), the brow's upper edge."""
  t = np.asarray(t, np.float64)
  u = side * (f.brow_out + (f.brow_in - f.brow_out) * t)
  arch = f.brow_arch * np.sin(np.pi * np.clip(t, 0, 1)**0.8)
  taper = f.brow_thick * (0.55 + 0.45 * t)
  return u, f.brow_y - arch - taper


def brow_lower(f: FaceParams, side, t):
  t = np.asarray(t, np.float64)
  u = side * (f.brow_out + (f.brow_in - f.brow_out) * t)
  arch = f.brow_arch * np.sin(np.pi * np.clip(t, 0, 1)**0.8)
  return u, f.brow_y - 0.8 * arch + 0.004


def eye(f: FaceParams, side, angle):
  """angle 0: outer corner, pi: inner corner, (0, pi): upper lid."""
  a = np.asarray(angle, np.float64)
  u = side * (f.eye_x + f.eye_w * np.cos(a))
  s = np.sin(a)
  # Upper lid peaks slightly towards the inner corner.
  up = f.eye_h * f.eye_open * s * (1 + 0.25 * np.cos(a - 2.0))
  low = 0.7 * f.eye_h * min(f.eye_open, 1.0) * s * (1 - 0.2 * np.cos(a))
  v = f.eye_y - np.where(s > 0, up, low) + 0.1 * f.eye_h * np.cos(a)
  return u, v


def pupil(f: FaceParams, side):
  u = side * f.eye_x + f.gaze[0]
  return np.asarray(u), np.asarray(f.eye_y + f.gaze[1])


def nose_bridge(f: FaceParams, t):
  """t in [0, 1]: between the eyes (0) to the tip (1)."""
  t = np.asarray(t, np.float64)
  return np.zeros_like(t), f.eye_y + (f.nose_tip - f.eye_y) * t


def nose_base(f: FaceParams, t):
  """t in [-1, 1]: left alar base, subnasale (0), right alar base."""
  t = np.asarray(t, np.float64)
  return f.nose_w * t, f.nose_base - 0.025 * np.abs(t)**1.5


def lip_outer_upper(f: FaceParams, t):
  t = np.asarray(t, np.float64)
  bow = 1 - 0.35 * np.exp(-((t / 0.18)**2))  # Cupid's bow dip at the middle
  v = f.mouth_y - f.mouth_open / 2 - f.lip_up * (1 - t**2)**0.7 * bow
  return f.mouth_w * t, v - f.smile * np.abs(t)**3


def lip_inner_upper(f: FaceParams, t):
  t = np.asarray(t, np.float64)
  v = f.mouth_y - f.mouth_open / 2 * (1 - t**2)
  return 0.82 * f.mouth_w * t, v - f.smile * np.abs(0.82 * t)**3


def lip_inner_lower(f: FaceParams, t):
  t = np.asarray(t, np.float64)
  v = f.mouth_y + f.mouth_open / 2 * (1 - t**2)
  return 0.82 * f.mouth_w * t, v - f.smile * np.abs(0.82 * t)**3


def lip_outer_lower(f: FaceParams, t):
  t = np.asarray(t, np.float64)
  v = f.mouth_y + f.mouth_open / 2 + f.lip_low * (1 - t**2)**0.6
  return f.mouth_w * t, v - f.smile * np.abs(t)**3


# ----------------------------------------------------------------------------
# Layouts: one (curve, side, parameter) per landmark.

_L, _R = -1, +1
_PI = np.pi


def _seq(curve, side, ts):
  return [(curve, side, float(t)) for t in ts]


def _mouth20():
  """The 20 mouth points shared by WFLW (76-95) and 300W (48-67): outer lip
  from the left corner over the upper lip and back along the lower, then the
  inner lip likewise."""
  p = [('lip_outer_upper', 0, -1.0)]
  p += _seq('lip_outer_upper', 0, [-0.6, -0.3, 0, 0.3, 0.6])
  p += [('lip_outer_upper', 0, 1.0)]
  p += _seq('lip_outer_lower', 0, [0.6, 0.3, 0, -0.3, -0.6])
  p += [('lip_inner_upper', 0, -1.0)]
  p += _seq('lip_inner_upper', 0, [-0.5, 0, 0.5])
  p += [('lip_inner_upper', 0, 1.0)]
  p += _seq('lip_inner_lower', 0, [0.5, 0, -0.5])
  return p


def _wflw98():
  p = []
  p += _seq('jaw', 0, np.linspace(-1, 1, 33))
  p += _seq('brow_upper', _L, np.linspace(0, 1, 5))
  p += _seq('brow_lower', _L, [0.8, 0.6, 0.4, 0.2])
  p += _seq('brow_upper', _R, np.linspace(1, 0, 5))
  p += _seq('brow_lower', _R, [0.2, 0.4, 0.6, 0.8])
  p += _seq('nose_bridge', 0, np.linspace(0.15, 1, 4))
  p += _seq('nose_base', 0, np.linspace(-1, 1, 5))
  p += _seq('eye', _L, np.arange(8) * _PI / 4)
  p += _seq('eye', _R, [_PI, 3 * _PI / 4, _PI / 2, _PI / 4, 0,
                         7 * _PI / 4, 3 * _PI / 2, 5 * _PI / 4])
  p += _mouth20()
  p += [('pupil', _L, 0.0), ('pupil', _R, 0.0)]
  return p


def _ibug68():
  p = []
  p += _seq('jaw', 0, np.linspace(-1, 1, 17))
  p += _seq('brow_upper', _L, np.linspace(0, 1, 5))
  p += _seq('brow_upper', _R, np.linspace(1, 0, 5))
  p += _seq('nose_bridge', 0, np.linspace(0.15, 1, 4))
  p += _seq('nose_base', 0, np.linspace(-1, 1, 5))
  p += _seq('eye', _L, np.arange(6) * _PI / 3)
  p += _seq('eye', _R, [_PI, 2 * _PI / 3, _PI / 3, 0, 5 * _PI / 3,
                         4 * _PI / 3])
  p += _mouth20()
  return p


def _cofw29():
  return [
      ('brow_upper', _L, 0.0), ('brow_upper', _R, 0.0),
      ('brow_upper', _L, 1.0), ('brow_upper', _R, 1.0),
      ('brow_upper', _L, 0.5), ('brow_lower', _L, 0.5),
      ('brow_upper', _R, 0.5), ('brow_lower', _R, 0.5),
      ('eye', _L, 0.0), ('eye', _R, 0.0), ('eye', _L, _PI), ('eye', _R, _PI),
      ('eye', _L, _PI / 2), ('eye', _L, 3 * _PI / 2),
      ('eye', _R, _PI / 2), ('eye', _R, 3 * _PI / 2),
      ('pupil', _L, 0.0), ('pupil', _R, 0.0),
      ('nose_base', 0, -1.0), ('nose_base', 0, 1.0),
      ('nose_bridge', 0, 1.0), ('nose_base', 0, 0.0),
      ('lip_outer_upper', 0, -1.0), ('lip_outer_upper', 0, 1.0),
      ('lip_outer_upper', 0, 0.0), ('lip_inner_upper', 0, 0.0),
      ('lip_inner_lower', 0, 0.0), ('lip_outer_lower', 0, 0.0),
      ('jaw', 0, 0.0),
  ]


def _aflw19():
  return [
      ('brow_upper', _L, 0.0), ('brow_upper', _L, 0.5),
      ('brow_upper', _L, 1.0), ('brow_upper', _R, 1.0),
      ('brow_upper', _R, 0.5), ('brow_upper', _R, 0.0),
      ('eye', _L, 0.0), ('pupil', _L, 0.0), ('eye', _L, _PI),
      ('eye', _R, _PI), ('pupil', _R, 0.0), ('eye', _R, 0.0),
      ('nose_base', 0, -1.0), ('nose_bridge', 0, 1.0), ('nose_base', 0, 1.0),
      ('lip_outer_upper', 0, -1.0), ('lip_inner_upper', 0, 0.0),
      ('lip_outer_upper', 0, 1.0), ('jaw', 0, 0.0),
  ]


# Per-layout annotation conventions: (du, dv) per group, mirrored in u for the
# image-left side so every convention is left-right symmetric.
_CONVENTIONS = {
    'syn98': dict(brows=(0.0, -0.012)),
    'syn68': dict(jaw=(0.0, -0.02), brows=(0.0, 0.008), nose=(0.0, 0.012)),
    'syn29': dict(eyes=(0.012, -0.02), mouth=(0.0, -0.012),
                  nose=(0.0, -0.015)),
    'syn19': dict(eyes=(-0.012, 0.012), brows=(0.01, 0.01),
                  mouth=(0.0, 0.015), jaw=(0.0, -0.03)),
}

_POINTS = {'syn98': _wflw98(), 'syn68': _ibug68(), 'syn29': _cofw29(),
           'syn19': _aflw19()}

SYNTHETIC_LAYOUTS = tuple(_POINTS)

_CURVES = dict(jaw=jaw, brow_upper=brow_upper, brow_lower=brow_lower, eye=eye,
               pupil=pupil, nose_bridge=nose_bridge, nose_base=nose_base,
               lip_outer_upper=lip_outer_upper,
               lip_inner_upper=lip_inner_upper,
               lip_inner_lower=lip_inner_lower,
               lip_outer_lower=lip_outer_lower)
_SIDED = {'brow_upper', 'brow_lower', 'eye', 'pupil'}


def _grouped(points):
  """[(curve, side, t), ...] -> [(curve, side, ts, indices), ...]."""
  groups = collections.defaultdict(list)
  for i, (name, side, t) in enumerate(points):
    groups[name, side].append((t, i))
  return [(name, side, np.asarray([t for t, _ in g]),
           np.asarray([i for _, i in g]))
          for (name, side), g in groups.items()]


_GROUPED = {name: _grouped(points) for name, points in _POINTS.items()}


def conventions(layout: str) -> dict[str, tuple[float, float]]:
  """{group: (du, dv)}: a synthetic layout's annotation convention, the
  surface offset of each of its point groups (du away from the face's
  midline) that `layout_uv` adds."""
  return dict(_CONVENTIONS.get(layout, {}))


def layout_uv(layout: str, f: FaceParams,
              convention: bool = True) -> np.ndarray:
  """Surface coordinates (N, 2) of a synthetic layout's landmarks on face f,
  with the layout's annotation convention (or, `convention=False`, exactly
  on the feature curves: the layout's semantics without a dataset's
  habits)."""
  if layout not in _POINTS:
    raise KeyError(f'unknown synthetic layout {layout!r}; known: '
                   f'{", ".join(SYNTHETIC_LAYOUTS)}')
  spec = layouts_lib.get(layout)
  uv = np.zeros((spec.num_points, 2))
  for name, side, ts, idx in _GROUPED[layout]:
    fn = _CURVES[name]
    if name == 'pupil':
      uu, vv = fn(f, side)
    elif name in _SIDED:
      uu, vv = fn(f, side, ts)
    else:
      uu, vv = fn(f, ts)
    uv[idx, 0], uv[idx, 1] = uu, vv
  for group, (du, dv) in (_CONVENTIONS.get(layout, {}) if convention
                           else {}).items():
    idx = np.asarray(spec.groups[group])
    uv[idx, 0] += np.sign(uv[idx, 0]) * du
    uv[idx, 1] += dv
  return uv
