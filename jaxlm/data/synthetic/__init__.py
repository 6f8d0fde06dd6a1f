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

The camera is public too, exactly: `Geometry` gives an item's `rotation`
R, `euler` (yaw, pitch, roll), `translation` t, `focal` f and
`principal_point` c of a pinhole camera at distance D = 8 on the optical
axis, pixel = f * (R p)_xy / (D - (R p)_z) + c for head coordinates p, c
being the head centre's pixel (not the image centre);
`camera_points(i, queries)` gives the queries in the camera frame
X = R p + t (depth -X_z). `SyntheticFaces(..., loose_framing=True)`
puts the face anywhere in a larger image (its crop-rule square 2 to 3
times smaller than the image, items carry it as `box`; config key
`data.<group>.<name>.loose_framing`). `video(i, num_frames)` renders
item i along a smooth, deterministic path of head pose and expression
(`video_geometry` without rendering; any query's truth on frame t from
`project_queries(i, queries, pose=..., face=...)`), and
`static_copies(i, num)` one frame with independent pixel noise only (a
static-jitter measure). New random draws come from streams of their own,
so every default output is unchanged.
"""

from __future__ import annotations

import dataclasses
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

# An item's rng streams apart from its own (seed, index) one, seeded
# (seed, index, stream, ...), so that new draws leave every default output
# unchanged. Non-zero: a trailing 0 seeds the same stream as none.
_LOOSE_STREAM = 101  # loose framing: box size and position
_PATH_STREAM = 102  # video: the pose and expression path
_NOISE_STREAM = 103  # render_pose / static_copies: noise_seed's noise
_VIDEO_NOISE_STREAM = 104  # video: each frame's noise


class Geometry(NamedTuple):
  """One item's face: identity and expression, pose and framing.

  The camera truth (exact, for models that predict head pose and camera
  intrinsics): head coordinates p (x right, y down, z towards the camera;
  the face's half-width is about 1) map to the item's pixels by a pinhole
  camera at distance D = 8 on the optical axis,

    pixel = focal * (R p)_xy / (D - (R p)_z) + principal_point,

  R = `rotation`. The principal point is the head centre's pixel
  (pose.centre), not the image centre. In the camera frame X = R p +
  `translation` (origin at the camera, axes those of the head frame at
  zero pose, `translation` = (0, 0, -D)), a point's depth is -X_z and
  pixel = focal * X_xy / (-X_z) + principal_point; see `render.Camera`
  for OpenCV's convention.
  """
  face: template.FaceParams
  pose: render_lib.Pose

  @property
  def camera(self) -> render_lib.Camera:
    return render_lib.Camera(self.pose)

  @property
  def rotation(self) -> np.ndarray:
    """(3, 3) R = rotation(yaw, pitch, roll): head coordinates -> camera
    axes."""
    return self.camera.rotation

  @property
  def euler(self) -> tuple[float, float, float]:
    """(yaw, pitch, roll) degrees of the pose: R = Rz(roll) Rx(pitch)
    Ry(yaw); positive yaw turns the face to the image's right, positive
    pitch tilts it down."""
    return self.camera.euler

  @property
  def translation(self) -> np.ndarray:
    """(3,) the head centre in the camera frame, (0, 0, -D)."""
    return self.camera.translation

  @property
  def focal(self) -> float:
    """Focal length, pixels (D * pose.scale)."""
    return self.camera.focal

  @property
  def principal_point(self) -> np.ndarray:
    """(2,) pixels: the head centre's pixel, not the image centre."""
    return self.camera.principal_point

  @property
  def intrinsics(self) -> np.ndarray:
    """(3, 3) K of focal and principal_point."""
    return self.camera.intrinsics


class SyntheticFaces:
  """A dataset of `size` rendered faces annotated with `layout`.

  Each item is a dict with
    image: (S, S, 3) uint8 RGB;
    landmarks: (N, 2) float32 pixels (x, y);
    visible: (N,) bool, False where the point is self-occluded;
    occluded: (N,) bool, True where an occluder covers it;
    index: the item's index;
    box: only with `loose_framing`, (4,) float64 (x0, y0, x1, y1) pixels:
      the face's crop-rule square (see `crop_box`).

  With `loose_framing`, the face is anywhere in a larger image: its
  crop-rule square, the square the default framing fills the image with
  (about 1.2x the longer side of the 98-point landmark box), is 2 to 3
  times smaller than the image (uniform) and its centre is shifted from the
  image centre by up to ±25 % of the side per axis (uniform), so it lies
  inside the image and the face inside it. The draws come from the item's
  own stream (seed, index, _LOOSE_STREAM); identity, pose, look and the
  default framing's draws are those of the default dataset, so cropping an
  item's `box` to S x S gives the default item's landmarks.
  """

  def __init__(self, layout: str, size: int, seed: int = 0,
               image_size: int = 256, occlusion_prob: float = 0.4,
               max_yaw: float = 60.0, max_pitch: float = 30.0,
               max_roll: float = 30.0, framing: float = 1.2,
               loose_framing: bool = False):
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
    self.loose_framing = bool(loose_framing)

  def __len__(self) -> int:
    return self.size

  def __repr__(self):
    loose = ', loose_framing=True' if self.loose_framing else ''
    return (f'SyntheticFaces({self.layout!r}, size={self.size}, '
            f'seed={self.seed}{loose})')

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

  def _stream(self, index: int, stream: int, *more: int):
    """An rng of item `index` apart from its own: new draws leave the
    item's (seed, index) draws, hence its default outputs, untouched."""
    return np.random.default_rng([self.seed, index, stream, *more])

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

  def _posed(self, index, face, yaw, pitch, roll, framing, shift):
    """The dataset's framing of item `index` at (yaw, pitch, roll):
    `_framed`, and with loose framing that image shrunk into the item's
    crop box."""
    pose = self._framed(face, yaw, pitch, roll, framing, shift)
    if not self.loose_framing:
      return pose
    rng = self._stream(index, _LOOSE_STREAM)
    ratio = float(rng.uniform(2.0, 3.0))  # image side / box side
    offset = rng.uniform(-0.25, 0.25, 2) * self.image_size
    # Default pixels x -> x / ratio + origin: the default image [0, S]^2
    # becomes the box, side S / ratio <= S / 2, centred within S / 4 of the
    # image centre, so inside the image (with the 98-point box in it).
    origin = self.image_size / 2 * (1 - 1 / ratio) + offset
    return render_lib.Pose(yaw, pitch, roll, pose.scale / ratio,
                           tuple(np.asarray(pose.centre) / ratio + origin))

  def _geometry(self, index: int):
    face, angles, framing, shift, rng = self._draws(index)
    pose = self._posed(index, face, *angles, framing, shift)
    uv = canonical.layout_uv(self.layout, face)
    return face, pose, uv, rng

  def _face_and_pose(self, index, pose, face):
    """`face` and `pose`, each the item's own where None."""
    item_face, item_pose, _, _ = self._geometry(int(index))
    return (item_face if face is None else face,
            item_pose if pose is None else pose)

  def geometry(self, index: int) -> Geometry:
    """Identity, expression and pose of item `index` (nothing rendered),
    with its exact camera truth (`Geometry.rotation`, `euler`,
    `translation`, `focal`, `principal_point`)."""
    face, pose, _, _ = self._geometry(int(index))
    return Geometry(face, pose)

  def crop_box(self, index: int, pose: render_lib.Pose | None = None,
               face: template.FaceParams | None = None) -> np.ndarray:
    """The face's crop-rule square in the image of item `index` (under
    `pose`, with `face`, when given): (4,) float64 (x0, y0, x1, y1) pixels.

    The square the dataset's default framing (the item's framing factor,
    about 1.2x the longer side of the 98-point box, and its small shift)
    fills the whole image with, at the pose's angles; cropping it to S x S
    (`crop.square_crop_affine(box, S, factor=1.0)`: crop pixel = (x - x0)
    * S / (x1 - x0)) gives that framing. (0, 0, S, S) for an item without
    loose framing.
    """
    index = int(index)
    item_face, angles, framing, shift, _ = self._draws(index)
    face = item_face if face is None else face
    if pose is None:
      pose = self._posed(index, face, *angles, framing, shift)
    ref = self._framed(face, pose.yaw, pose.pitch, pose.roll, framing, shift)
    a = pose.scale / ref.scale
    x0, y0 = np.asarray(pose.centre) - a * np.asarray(ref.centre)
    side = a * self.image_size
    return np.array([x0, y0, x0 + side, y0 + side], np.float64)

  def project_queries(self, index: int, queries: Queries,
                      pose: render_lib.Pose | None = None,
                      face: template.FaceParams | None = None) -> dict:
    """The exact truth of any `queries` on item `index`'s face.

    Returns dict(points (N, 2) float32 pixels of the item's image (of
    `render_pose`'s image under `pose`, when given, with `face`, a changed
    expression such as a `video` frame's), visible (N,) bool: False where
    the point is self-occluded, as the item's own landmarks; a point behind
    the surface is visible when the surface point above it is). Occluders
    are not considered.
    """
    face, pose = self._face_and_pose(index, pose, face)
    zbuf = render_lib.head_depth_buffer(face, pose, self.image_size)
    pts, visible = render_lib.project_points(
        render_lib.Camera(pose), face, queries.uv_on(face), queries.depth,
        zbuf, self.image_size)
    return dict(points=pts.astype(np.float32), visible=visible)

  def camera_points(self, index: int, queries: Queries,
                    pose: render_lib.Pose | None = None,
                    face: template.FaceParams | None = None) -> np.ndarray:
    """(N, 3) float64: `queries` on item `index`'s face (under `pose`,
    with `face`, when given) in the camera frame X = R p + t (see
    `Geometry`): origin at the camera, x right, y down, z from the scene
    towards the camera, so a point's depth is -X_z, and its pixel,
    `project_queries`' points, is focal * X_xy / (-X_z) + principal_point.
    """
    face, pose = self._face_and_pose(index, pose, face)
    return render_lib.Camera(pose).camera_frame(queries.points_on(face))

  def _noise(self, index: int, noise_seed: int | None):
    return (None if noise_seed is None
            else self._stream(index, _NOISE_STREAM, int(noise_seed)))

  def _render(self, index, rng, face, pose, occlusion_prob, noise_rng):
    """A frame of item `index` with the look of `rng` (the item's)."""
    uv = canonical.layout_uv(self.layout, face)
    image, info = render_lib.render(rng, face, pose, {self.layout: uv},
                                    self.image_size, occlusion_prob,
                                    noise_rng)
    info = info[self.layout]
    out = dict(image=image, landmarks=info['points'],
               visible=info['visible'], occluded=info['occluded'],
               pose=pose, index=index)
    if self.loose_framing:
      out['box'] = self.crop_box(index, pose, face)
    return out

  def render_pose(self, index: int, yaw: float, pitch: float, roll: float,
                  occlusion_prob: float = 0.0,
                  keep_framing: render_lib.Pose | None = None,
                  face: template.FaceParams | None = None,
                  noise_seed: int | None = None) -> dict:
    """Item `index`'s identity and look under another head pose: a frame
    of a video of one person.

    The look (colours, lighting, background clutter, noise pattern) comes
    from the item's own rng, seeded by (seed, index), so every frame of one
    item looks alike; at the item's own angles and occlusion probability
    the image is the item's. The face is framed at the new pose by the
    dataset's rule, with the item's framing factor and shift (the image is
    the model input, crop units = pixel / image_size; with loose framing,
    in the item's crop box), or, given `keep_framing` (e.g. an earlier
    frame's pose), with that pose's scale and head centre (a fixed camera).
    `face` replaces the item's identity and expression (e.g. a `video`
    frame's expression); `noise_seed` (an int >= 0) draws the pixel noise
    field from its own stream, all else unchanged (None: the item's).

    Returns dict(image (S, S, 3) uint8 RGB, landmarks (N, 2) float32
    pixels of the layout, visible (N,), occluded (N,), pose: pass it to
    `project_queries(index, queries, pose=...)` for any query's truth,
    index, and with loose framing box, `crop_box` at the pose).
    """
    index = int(index)
    item_face, _, framing, shift, rng = self._draws(index)
    face = item_face if face is None else face
    yaw, pitch, roll = float(yaw), float(pitch), float(roll)
    if keep_framing is None:
      pose = self._posed(index, face, yaw, pitch, roll, framing, shift)
    else:
      pose = render_lib.Pose(yaw, pitch, roll, keep_framing.scale,
                             keep_framing.centre)
    return self._render(index, rng, face, pose, occlusion_prob,
                        self._noise(index, noise_seed))

  def static_copies(self, index: int, num: int,
                    pose: render_lib.Pose | None = None,
                    face: template.FaceParams | None = None,
                    occlusion_prob: float | None = None) -> dict:
    """`num` renders of one frame that differ by their pixel noise only
    (a static-jitter measure): copy k is `render_pose`'s image with
    noise_seed k.

    The frame is item `index` (its pose, face and the dataset's occlusion
    probability), or the frame of `pose` and `face` (e.g. a `video`
    frame's, with its occlusion_prob, there 0.0).

    Returns dict(images (num, S, S, 3) uint8, landmarks (N, 2), visible
    (N,), occluded (N,) (the same for every copy), pose, index, and with
    loose framing box).
    """
    index = int(index)
    face, pose = self._face_and_pose(index, pose, face)
    occlusion_prob = (self.occlusion_prob if occlusion_prob is None
                      else occlusion_prob)
    copies = [self._render(index, self._draws(index)[-1], face, pose,
                           occlusion_prob, self._noise(index, k))
              for k in range(int(num))]
    out = {k: v for k, v in copies[0].items() if k != 'image'}
    return dict(images=np.stack([c['image'] for c in copies]), **out)

  def _video_path(self, index: int, num_frames: int, period: float):
    """(8, T) smooth curves in [-1, 1]: for yaw, pitch, roll, eye opening,
    mouth opening, smile, gaze u and v, each a weighted sum of three
    sinusoids with periods of 0.5 to 1.5 x `period` frames and random
    phases (the item's stream (seed, index, _PATH_STREAM))."""
    rng = self._stream(index, _PATH_STREAM)
    periods = period * rng.uniform(0.5, 1.5, (8, 3))
    phases = rng.uniform(0.0, 2 * np.pi, (8, 3))
    weights = rng.uniform(0.5, 1.0, (8, 3))
    weights /= weights.sum(-1, keepdims=True)
    t = np.arange(int(num_frames), dtype=np.float64)[:, None, None]
    return (weights * np.sin(2 * np.pi * t / periods + phases)).sum(-1).T

  def video_geometry(self, index: int, num_frames: int,
                     amplitude: float = 0.5, period: float = 90.0,
                     expression: bool = True,
                     keep_framing: bool = True) -> list[Geometry]:
    """The face and pose of each frame of `video` (nothing rendered)."""
    if int(num_frames) < 1:
      raise ValueError(f'num_frames {num_frames} < 1')
    if not 0.0 <= amplitude <= 1.0:
      raise ValueError(f'amplitude {amplitude} is not in [0, 1] (a fraction '
                       f'of the maximum angles {self.max_angles})')
    index = int(index)
    item_face, _, framing, shift, _ = self._draws(index)
    path = self._video_path(index, num_frames, float(period))
    angles = amplitude * np.asarray(self.max_angles, np.float64)[:, None]
    angles = angles * path[:3]
    frames = []
    for t in range(int(num_frames)):
      face = item_face
      if expression:
        eye, mouth, smile, gaze_u, gaze_v = path[3:, t].tolist()
        face = dataclasses.replace(
            item_face, eye_open=0.675 + 0.425 * eye,
            mouth_open=max(0.0, 0.07 + 0.07 * mouth),
            smile=0.01 + 0.03 * smile, gaze=(0.025 * gaze_u, 0.01 * gaze_v))
      yaw, pitch, roll = angles[:, t].tolist()
      if keep_framing and frames:
        first = frames[0].pose
        pose = render_lib.Pose(yaw, pitch, roll, first.scale, first.centre)
      else:
        pose = self._posed(index, face, yaw, pitch, roll, framing, shift)
      frames.append(Geometry(face, pose))
    return frames

  def video(self, index: int, num_frames: int, amplitude: float = 0.5,
            period: float = 90.0, expression: bool = True,
            keep_framing: bool = True, occlusion_prob: float = 0.0,
            noise_seed: int | None = 0) -> dict:
    """A synthetic video of item `index`: its identity and look along a
    smooth, deterministic path of pose and expression.

    Yaw, pitch and roll are each `amplitude` x the dataset's maximum angle
    times a sum of three sinusoids (weights summing to 1, periods 0.5 to
    1.5 x `period` frames, phases from the item's stream (seed, index,
    _PATH_STREAM)), so within ± that bound; with `expression`, eye opening
    (0.25 to 1.1), mouth opening (0 to 0.14), smile and gaze follow such
    curves too (identity fixed; else the item's expression throughout).
    With `keep_framing`, every frame has frame 0's scale and head centre (a
    fixed camera; frame 0 framed by the dataset's rule), else each frame is
    framed by the rule (the framing drifts with the face). Each frame's
    pixel noise field is drawn from (seed, index, _VIDEO_NOISE_STREAM,
    noise_seed, frame), independent between frames and between noise
    seeds (None: the item's own noise pattern in every frame). The same
    call gives the same arrays.

    Returns dict(images (T, S, S, 3) uint8, landmarks (T, N, 2) float32,
    visible (T, N), occluded (T, N), poses and faces: lists of T
    (`Pose`, `FaceParams`): `project_queries(index, queries, pose=poses[t],
    face=faces[t])` is any query's truth on frame t, `Geometry(faces[t],
    poses[t])` its camera truth; index; with loose framing box (T, 4)).
    """
    index = int(index)
    geometry = self.video_geometry(index, num_frames, amplitude, period,
                                   expression, keep_framing)
    frames = []
    for t, g in enumerate(geometry):
      noise = (None if noise_seed is None else
               self._stream(index, _VIDEO_NOISE_STREAM, int(noise_seed), t))
      frames.append(self._render(index, self._draws(index)[-1], g.face,
                                 g.pose, occlusion_prob, noise))
    out = dict(images=np.stack([f['image'] for f in frames]))
    for key in ('landmarks', 'visible', 'occluded'):
      out[key] = np.stack([f[key] for f in frames])
    out.update(poses=[g.pose for g in geometry],
               faces=[g.face for g in geometry], index=index)
    if self.loose_framing:
      out['box'] = np.stack([f['box'] for f in frames])
    return out

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
    item = dict(image=image, landmarks=info['points'],
                visible=info['visible'], occluded=info['occluded'],
                index=index)
    if self.loose_framing:
      item['box'] = self.crop_box(index, pose, face)
    return item
