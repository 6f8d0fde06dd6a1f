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
"""

from __future__ import annotations

import numpy as np

from jaxlm import layouts as layouts_lib
from jaxlm.data.synthetic import render as render_lib
from jaxlm.data.synthetic import template
from jaxlm.data.synthetic.template import SYNTHETIC_LAYOUTS

__all__ = ['SyntheticFaces', 'SYNTHETIC_LAYOUTS']


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

  def _geometry(self, index: int):
    if not 0 <= index < self.size:
      raise IndexError(f'index {index} out of range for {self!r}')
    rng = np.random.default_rng([self.seed, index])
    face = template.sample_face_params(rng)
    yaw, pitch, roll = render_lib.sample_angles(rng, *self.max_angles)
    # Frame the face: unit scale first, then fit the 98-point box.
    probe = render_lib.Camera(render_lib.Pose(yaw, pitch, roll, 1.0, (0, 0)))
    ref = template.layout_uv('syn98', face)
    p = probe.project(probe.to_camera(template.surface(ref[:, 0], ref[:, 1],
                                                       face)))
    lo, hi = p.min(0), p.max(0)
    framing = float(np.clip(rng.normal(self.framing, 0.05),
                            self.framing - 0.05, self.framing + 0.05))
    scale = self.image_size / framing / float((hi - lo).max())
    shift = np.clip(rng.normal(0, 0.04, 2), -0.06, 0.06) * self.image_size
    centre = self.image_size / 2 - scale * (lo + hi) / 2 + shift
    pose = render_lib.Pose(yaw, pitch, roll, scale, tuple(centre))
    uv = template.layout_uv(self.layout, face)
    return face, pose, uv, rng

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
