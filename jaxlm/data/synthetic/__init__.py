"""Synthetic faces: jaxlm's embedded default benchmark.

`SyntheticFaces(layout, size, seed)` is a random-access source: item i is a
256x256 RGB face rendered from a 3D template under a random identity,
expression, head pose (yaw up to ±60°, pitch and roll up to ±30°), lighting,
background clutter and occluders, with the exact landmarks of `layout`.
Items are a deterministic function of (seed, i). Because every surface point's
truth is known, zero-shot accuracy on a layout never seen in training is
measured exactly.

The faces are framed as the official TUFA crop rule frames real ones: the
square side is about 1.2x the longer side of the 98-point landmark box, with
a small random shift, so the image *is* the model input (crop units =
pixel / 256).

The geometry is public (`canonical.py`): a canonical face C, `Queries` (any
layout's landmarks, points along feature curves, any (u, v) of C on or off
the surface) and, per item, `geometry(i)` (identity, pose, camera) and
`project_queries(i, queries)`: the exact pixels of any queries on that face
with their self-occlusion flags. `render_pose(i, yaw, pitch, roll)` renders
item i's identity and look under another head pose (a video of one person),
its truth from `project_queries(i, queries, pose=...)`. `syndense` is a
dense layout: 2048 fixed points of C (the first four are the outer eye
corners and the pupils), carried to every face by a feature-preserving
warp.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from jaxlm import layouts as layouts_lib
from jaxlm.data.synthetic import canonical
from jaxlm.data.synthetic import render as render_lib
from jaxlm.data.synthetic import template
from jaxlm.data.synthetic.canonical import Queries
from jaxlm.data.synthetic.template import SYNTHETIC_LAYOUTS as _CURVE_LAYOUTS

SYNTHETIC_LAYOUTS = _CURVE_LAYOUTS + tuple(canonical.DENSE_LAYOUTS)

__all__ = ['SyntheticFaces', 'SYNTHETIC_LAYOUTS', 'Queries', 'Geometry',
           'canonical']


class Geometry(NamedTuple):
  """One item's face: identity and expression, pose and framing."""
  face: template.FaceParams
  pose: render_lib.Pose

  @property
  def camera(self) -> render_lib.Camera:
    return render_lib.Camera(self.pose)


class SyntheticFaces:
  """A dataset of `size` rendered faces annotated with `layout`.

  Each item is a dict with
    image: (S, S, 3) uint8 RGB;
    landmarks: (N, 2) float32 pixels (x, y);
    visible: (N,) bool, False where the point is self-occluded;
    occluded: (N,) bool, True where an occluder covers it;
    index: the item's index.
  """

  def __init__(self, layout: str, size: int, seed: int = 0,
               image_size: int = 256, occlusion_prob: float = 0.4,
               max_yaw: float = 60.0, max_pitch: float = 30.0,
               max_roll: float = 30.0, framing: float = 1.2):
    if layout not in SYNTHETIC_LAYOUTS:
      raise KeyError(f'unknown synthetic layout {layout!r}; known: '
                     f'{", ".join(SYNTHETIC_LAYOUTS)}')
    self.layout = layout
    self.num_points = layouts_lib.get(layout).num_points
    self.size = int(size)
    self.seed = int(seed)
    self.image_size = int(image_size)
    self.occlusion_prob = occlusion_prob
    self.max_angles = (max_yaw, max_pitch, max_roll)
    self.framing = framing

  def __len__(self) -> int:
    return self.size

  def __repr__(self):
    return (f'SyntheticFaces({self.layout!r}, size={self.size}, '
            f'seed={self.seed})')

  def _draws(self, index: int):
    """Item `index`'s random draws, in their fixed order: identity, angles,
    framing factor, shift (pixels), and the rng left for the look."""
    if not 0 <= index < self.size:
      raise IndexError(f'index {index} out of range for {self!r}')
    rng = np.random.default_rng([self.seed, index])
    face = template.sample_face_params(rng)
    angles = render_lib.sample_angles(rng, *self.max_angles)
    framing = float(np.clip(rng.normal(self.framing, 0.05),
                            self.framing - 0.05, self.framing + 0.05))
    shift = np.clip(rng.normal(0, 0.04, 2), -0.06, 0.06) * self.image_size
    return face, angles, framing, shift, rng

  def _framed(self, face, yaw, pitch, roll, framing, shift):
    """The pose that frames `face` at (yaw, pitch, roll): unit scale first,
    then the 98-point box fitted to 1 / `framing` of the image, moved by
    `shift` pixels."""
    probe = render_lib.Camera(render_lib.Pose(yaw, pitch, roll, 1.0, (0, 0)))
    ref = template.layout_uv('syn98', face)
    p = probe.project(probe.to_camera(template.surface(ref[:, 0], ref[:, 1],
                                                       face)))
    lo, hi = p.min(0), p.max(0)
    scale = self.image_size / framing / float((hi - lo).max())
    centre = self.image_size / 2 - scale * (lo + hi) / 2 + shift
    return render_lib.Pose(yaw, pitch, roll, scale, tuple(centre))

  def _geometry(self, index: int):
    face, angles, framing, shift, rng = self._draws(index)
    pose = self._framed(face, *angles, framing, shift)
    uv = canonical.layout_uv(self.layout, face)
    return face, pose, uv, rng

  def geometry(self, index: int) -> Geometry:
    """Identity, expression and pose of item `index` (nothing rendered)."""
    face, pose, _, _ = self._geometry(int(index))
    return Geometry(face, pose)

  def project_queries(self, index: int, queries: Queries,
                      pose: render_lib.Pose | None = None) -> dict:
    """The exact truth of any `queries` on item `index`'s face.

    Returns dict(points (N, 2) float32 pixels of the item's image (of
    `render_pose`'s image under `pose`, when given), visible (N,) bool:
    False where the point is self-occluded, as the item's own landmarks; a
    point behind the surface is visible when the surface point above it
    is). Occluders are not considered.
    """
    face, item_pose, _, _ = self._geometry(int(index))
    pose = item_pose if pose is None else pose
    zbuf = render_lib.head_depth_buffer(face, pose, self.image_size)
    pts, visible = render_lib.project_points(
        render_lib.Camera(pose), face, queries.uv_on(face), queries.depth,
        zbuf, self.image_size)
    return dict(points=pts.astype(np.float32), visible=visible)

  def render_pose(self, index: int, yaw: float, pitch: float, roll: float,
                  occlusion_prob: float = 0.0,
                  keep_framing: render_lib.Pose | None = None) -> dict:
    """Item `index`'s identity and look under another head pose: a frame
    of a video of one person.

    The look (colours, lighting, background clutter, noise pattern) comes
    from the item's own rng, seeded by (seed, index), so every frame of one
    item looks alike; at the item's own angles and occlusion probability
    the image is the item's. The face is framed at the new pose by the
    dataset's rule, with the item's framing factor and shift (the image is
    the model input, crop units = pixel / image_size), or, given
    `keep_framing` (e.g. an earlier frame's pose), with that pose's scale
    and head centre (a fixed camera).

    Returns dict(image (S, S, 3) uint8 RGB, landmarks (N, 2) float32
    pixels of the layout, visible (N,), occluded (N,), pose: pass it to
    `project_queries(index, queries, pose=...)` for any query's truth).
    """
    index = int(index)
    face, _, framing, shift, rng = self._draws(index)
    yaw, pitch, roll = float(yaw), float(pitch), float(roll)
    if keep_framing is None:
      pose = self._framed(face, yaw, pitch, roll, framing, shift)
    else:
      pose = render_lib.Pose(yaw, pitch, roll, keep_framing.scale,
                             keep_framing.centre)
    uv = canonical.layout_uv(self.layout, face)
    image, info = render_lib.render(rng, face, pose, {self.layout: uv},
                                    self.image_size, occlusion_prob)
    info = info[self.layout]
    return dict(image=image, landmarks=info['points'],
                visible=info['visible'], occluded=info['occluded'],
                pose=pose, index=index)

  def landmarks(self, index: int) -> np.ndarray:
    """(N, 2) pixel landmarks of item `index`, without rendering the image."""
    face, pose, uv, _ = self._geometry(index)
    cam = render_lib.Camera(pose)
    pts = cam.project(cam.to_camera(template.surface(uv[:, 0], uv[:, 1],
                                                     face)))
    return pts.astype(np.float32)

  def __getitem__(self, index: int) -> dict:
    index = int(index)
    face, pose, uv, rng = self._geometry(index)
    image, info = render_lib.render(rng, face, pose, {self.layout: uv},
                                    self.image_size, self.occlusion_prob)
    info = info[self.layout]
    return dict(image=image, landmarks=info['points'],
                visible=info['visible'], occluded=info['occluded'],
                index=index)
