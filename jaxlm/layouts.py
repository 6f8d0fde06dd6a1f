"""Landmark layouts: point counts, flip permutations, metric normalisers, groups.

A *layout* is a landmark annotation scheme (WFLW's 98 points, 300W's 68, ...).
This module is a leaf: it imports nothing from jaxlm, so models, data and
metrics can all depend on it.

Index conventions are the published ones of each dataset (0-based). "Left" and
"right" below are as seen in the image: point 0 of the 68-point jaw is at the
image's left. The synthetic layouts (`syn98`, `syn68`, `syn29`, `syn19`) use
the index schemes of WFLW, 300W, COFW and AFLW-19 respectively, so every tool
that works on a real layout works on its synthetic twin.
"""

from __future__ import annotations

import dataclasses
from typing import Mapping, Sequence


@dataclasses.dataclass(frozen=True)
class Layout:
  """One landmark scheme.

  Attributes:
    name: registry key, e.g. 'wflw98'.
    num_points: N.
    outer_eye_corners: (i, j), the inter-ocular normaliser.
    pupils: two index tuples; each pupil is the mean of its points (a single
      index for datasets that annotate pupils, the eye contour for 300W).
    flip_pairs: pairs (i, j) swapped by a horizontal flip; points in no pair
      map to themselves.
    groups: named index ranges (jaw, brows, nose, eyes, mouth, pupils).
    contours: the lines a drawing connects, in drawing order: each a
      `Contour` of points along one feature (the jaw, one brow, one eye,
      the nose bridge and base, the outer and inner lip), closed when it
      goes round; points on none (pupils, COFW's chin) stand alone.
  """
  name: str
  num_points: int
  outer_eye_corners: tuple[int, int]
  pupils: tuple[tuple[int, ...], tuple[int, ...]]
  flip_pairs: tuple[tuple[int, int], ...]
  groups: Mapping[str, tuple[int, ...]]
  contours: tuple['Contour', ...] = ()

  @property
  def flip_permutation(self) -> tuple[int, ...]:
    """perm such that flipped_points = mirror(points)[perm]."""
    perm = list(range(self.num_points))
    for i, j in self.flip_pairs:
      perm[i], perm[j] = j, i
    return tuple(perm)


@dataclasses.dataclass(frozen=True)
class Contour:
  """Points along one facial feature, in order; `closed`: it goes round
  (an eye, a lip), so the last point joins the first."""
  name: str
  points: tuple[int, ...]
  closed: bool = False


def _r(a: int, b: int) -> tuple[int, ...]:
  return tuple(range(a, b))


def _mirror(pairs: Sequence[tuple[int, int]]) -> tuple[tuple[int, int], ...]:
  return tuple((int(i), int(j)) for i, j in pairs)


_WFLW_FLIP = _mirror(
    [(i, 32 - i) for i in range(16)]
    + [(33, 46), (34, 45), (35, 44), (36, 43), (37, 42),
       (38, 50), (39, 49), (40, 48), (41, 47)]
    + [(55, 59), (56, 58)]
    + [(60, 72), (61, 71), (62, 70), (63, 69), (64, 68),
       (65, 75), (66, 74), (67, 73)]
    + [(76, 82), (77, 81), (78, 80), (87, 83), (86, 84),
       (88, 92), (89, 91), (95, 93), (96, 97)])

_IBUG_FLIP = _mirror(
    [(i, 16 - i) for i in range(8)]
    + [(17, 26), (18, 25), (19, 24), (20, 23), (21, 22)]
    + [(31, 35), (32, 34)]
    + [(36, 45), (37, 44), (38, 43), (39, 42), (40, 47), (41, 46)]
    + [(48, 54), (49, 53), (50, 52), (59, 55), (58, 56),
       (60, 64), (61, 63), (67, 65)])

# COFW's 29 points (the pairs used by HRNet-facial-landmark-detection).
_COFW_FLIP = _mirror([(0, 1), (4, 6), (2, 3), (5, 7), (8, 9), (10, 11),
                      (12, 14), (16, 17), (13, 15), (18, 19), (22, 23)])

_AFLW19_FLIP = _mirror([(0, 5), (1, 4), (2, 3), (6, 11), (7, 10), (8, 9),
                        (12, 14), (15, 17)])

# Left/right below are as seen in the image (the left brow is the image's).
_WFLW = dict(
    num_points=98, outer_eye_corners=(60, 72), pupils=((96,), (97,)),
    flip_pairs=_WFLW_FLIP,
    groups=dict(jaw=_r(0, 33), brows=_r(33, 51), nose=_r(51, 60),
                eyes=_r(60, 76), mouth=_r(76, 96), pupils=(96, 97)),
    # brows: upper edge outer -> inner, lower edge back; eyes: from the
    # outer (left eye) or inner (right eye) corner over the upper lid
    contours=(Contour('jaw', _r(0, 33)),
              Contour('left brow', _r(33, 42), True),
              Contour('right brow', _r(42, 51), True),
              Contour('nose bridge', _r(51, 55)),
              Contour('nose base', _r(55, 60)),
              Contour('left eye', _r(60, 68), True),
              Contour('right eye', _r(68, 76), True),
              Contour('outer lip', _r(76, 88), True),
              Contour('inner lip', _r(88, 96), True)))

_IBUG = dict(
    num_points=68, outer_eye_corners=(36, 45),
    pupils=(_r(36, 42), _r(42, 48)),
    flip_pairs=_IBUG_FLIP,
    groups=dict(jaw=_r(0, 17), brows=_r(17, 27), nose=_r(27, 36),
                eyes=_r(36, 48), mouth=_r(48, 68)),
    contours=(Contour('jaw', _r(0, 17)),
              Contour('left brow', _r(17, 22)),
              Contour('right brow', _r(22, 27)),
              Contour('nose bridge', _r(27, 31)),
              Contour('nose base', _r(31, 36)),
              Contour('left eye', _r(36, 42), True),
              Contour('right eye', _r(42, 48), True),
              Contour('outer lip', _r(48, 60), True),
              Contour('inner lip', _r(60, 68), True)))

_COFW = dict(
    num_points=29, outer_eye_corners=(8, 9), pupils=((16,), (17,)),
    flip_pairs=_COFW_FLIP,
    groups=dict(jaw=(28,), brows=_r(0, 8), eyes=_r(8, 16), pupils=(16, 17),
                nose=_r(18, 22), mouth=_r(22, 28)),
    # 0-7: brow outer, inner, upper-middle, lower-middle corners (left,
    # right); 8-15 eye outer, inner corner, upper, lower lid; 18/19 the
    # nose wings, 20 its tip, 21 the base centre; 22/23 mouth corners,
    # 24/27 outer upper/lower lip, 25/26 inner; 28 the chin
    contours=(Contour('left brow', (0, 4, 2, 5), True),
              Contour('right brow', (1, 6, 3, 7), True),
              Contour('left eye', (8, 12, 10, 13), True),
              Contour('right eye', (9, 14, 11, 15), True),
              Contour('nose base', (18, 21, 19)),
              Contour('nose tip', (20, 21)),
              Contour('outer lip', (22, 24, 23, 27), True),
              Contour('inner lip', (22, 25, 23, 26), True)))

_AFLW19 = dict(
    num_points=19, outer_eye_corners=(6, 11), pupils=((7,), (10,)),
    flip_pairs=_AFLW19_FLIP,
    groups=dict(brows=_r(0, 6), eyes=(6, 8, 9, 11), pupils=(7, 10),
                nose=_r(12, 15), mouth=_r(15, 18), jaw=(18,)),
    # brows outer -> inner (left) and inner -> outer (right); eye corners
    # (the pupils 7 and 10 between them stand alone); nose wings and tip;
    # mouth corners and the inner upper lip; 18 the chin
    contours=(Contour('left brow', _r(0, 3)),
              Contour('right brow', _r(3, 6)),
              Contour('left eye', (6, 8)),
              Contour('right eye', (9, 11)),
              Contour('nose', _r(12, 15)),
              Contour('mouth', _r(15, 18))))

# CelebA / MAFL: left eye, right eye, nose tip, left and right mouth corner
# (left = image left). Its normaliser is the distance of the eye centres.
_CELEBA5 = dict(
    num_points=5, outer_eye_corners=(0, 1), pupils=((0,), (1,)),
    flip_pairs=_mirror([(0, 1), (3, 4)]),
    groups=dict(eyes=(0, 1), nose=(2,), mouth=(3, 4)),
    contours=(Contour('mouth', (3, 4)),))

# jaxlm's dense synthetic layout (data/synthetic/canonical.py): 2048 fixed
# points of the canonical face, the first four its outer eye corners and
# pupils (so the inter-ocular and inter-pupil normalisers apply), no flip
# pairs (never flip-augmented).
_SYNDENSE = dict(
    num_points=2048, outer_eye_corners=(0, 1), pupils=((2,), (3,)),
    flip_pairs=(), groups=dict(eyes=(0, 1), pupils=(2, 3),
                               dense=_r(4, 2048)))

LAYOUTS: dict[str, Layout] = {
    name: Layout(name=name, **spec) for name, spec in [
        ('wflw98', _WFLW), ('300w68', _IBUG), ('merlrav68', _IBUG),
        ('cofw29', _COFW), ('aflw19', _AFLW19), ('celeba5', _CELEBA5),
        ('syn98', _WFLW), ('syn68', _IBUG), ('syn29', _COFW),
        ('syn19', _AFLW19), ('syndense', _SYNDENSE),
    ]
}


def get(name: str) -> Layout:
  """Returns the registered layout `name`, or raises a KeyError listing all."""
  try:
    return LAYOUTS[name]
  except KeyError:
    raise KeyError(f'unknown layout {name!r}; known layouts: '
                   f'{", ".join(sorted(LAYOUTS))}') from None


def inter_ocular(points, eyes: tuple[int, int]):
  """(...,) distance between points `eyes[0]` and `eyes[1]` of (..., N, 2)
  landmarks (a layout's `outer_eye_corners`): the inter-ocular normaliser
  of the metrics, SLPT's loss and the training NME. NumPy or JAX arrays."""
  d = points[..., eyes[0], :] - points[..., eyes[1], :]
  return (d * d).sum(-1) ** 0.5
