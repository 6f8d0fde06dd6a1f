"""Renders a sampled 3D face to a 256x256 image with OpenCV.

Pipeline per image: cluttered background -> shoulders and neck -> head mesh
(painter's order with a depth buffer, Lambert + specular shading, hair) ->
facial features drawn on the surface and depth-tested against the head (so the
nose hides the far eye at large yaw) -> random occluders -> blur, noise,
colour jitter.

Pixel convention: a landmark at (x, y) is in OpenCV's pixel frame (integer
coordinates are pixel centres); crop units are pixel / size, as in the
official TUFA code.
"""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np

from jaxlm.data.synthetic import template as T

_SHIFT = 4  # sub-pixel bits for OpenCV drawing
_ONE = 1 << _SHIFT
_CAMERA_DISTANCE = 8.0  # in face half-widths


@dataclasses.dataclass(frozen=True)
class Pose:
  yaw: float  # degrees, positive turns the face to the image's right
  pitch: float  # degrees, positive tilts the face down
  roll: float  # degrees, in-plane
  scale: float  # pixels per face half-width (at zero depth)
  centre: tuple[float, float]  # pixel position of the head centre


def sample_angles(rng: np.random.Generator, max_yaw=60.0, max_pitch=30.0,
                  max_roll=30.0) -> tuple[float, float, float]:
  """Mostly near-frontal faces with a heavy tail up to the limits."""
  if rng.random() < 0.7:
    yaw = rng.normal(0, max_yaw / 3)
  else:
    yaw = rng.uniform(-max_yaw, max_yaw)
  pitch = rng.normal(0, max_pitch / 3)
  roll = rng.normal(0, max_roll / 3)
  return (float(np.clip(yaw, -max_yaw, max_yaw)),
          float(np.clip(pitch, -max_pitch, max_pitch)),
          float(np.clip(roll, -max_roll, max_roll)))


def rotation(yaw: float, pitch: float, roll: float) -> np.ndarray:
  y, p, r = np.deg2rad([yaw, pitch, roll])
  ry = np.array([[np.cos(y), 0, np.sin(y)], [0, 1, 0],
                 [-np.sin(y), 0, np.cos(y)]])
  rx = np.array([[1, 0, 0], [0, np.cos(p), -np.sin(p)],
                 [0, np.sin(p), np.cos(p)]])
  rz = np.array([[np.cos(r), -np.sin(r), 0], [np.sin(r), np.cos(r), 0],
                 [0, 0, 1]])
  return rz @ rx @ ry


class Camera:
  """Rotates head coordinates and projects them to pixels.

  A pinhole camera on the optical axis at distance D = `_CAMERA_DISTANCE`
  (8 face half-widths) from the head centre. Head coordinates p (x right,
  y down, z towards the camera) are rotated by R = `rotation(yaw, pitch,
  roll)` (`to_camera`: the rotated head frame, origin at the head centre)
  and projected with focal length f = D * scale pixels and principal point
  c = pose.centre, the head centre's pixel (not the image centre):

    pixel = f * (R p)_xy / (D - (R p)_z) + c.

  The camera frame (`camera_frame`) is that rotated frame moved to the
  camera: X = R p + t with t = `translation` = (0, 0, -D), the head centre
  seen from the camera; its axes are the head frame's at zero pose (x
  right, y down, z from the scene towards the camera), so the camera looks
  along -z, a point's depth in front of it is -X_z = D - (R p)_z > 0, and
  pixel = f * X_xy / (-X_z) + c. (These frames are left-handed. For
  OpenCV's right-handed convention, z forward, flip z in both: with
  F = diag(1, 1, -1), p_cv = F p, R_cv = F R F (a rotation), t_cv = (0, 0,
  D) and K = `intrinsics` project p_cv as `cv2.projectPoints` does.)
  """

  def __init__(self, pose: Pose):
    self.pose = pose
    self.rot = rotation(pose.yaw, pose.pitch, pose.roll)

  @property
  def rotation(self) -> np.ndarray:
    """(3, 3) R: head coordinates -> the camera frame's axes."""
    return self.rot.copy()

  @property
  def euler(self) -> tuple[float, float, float]:
    """(yaw, pitch, roll) degrees: R = Rz(roll) @ Rx(pitch) @ Ry(yaw)."""
    return (float(self.pose.yaw), float(self.pose.pitch),
            float(self.pose.roll))

  @property
  def translation(self) -> np.ndarray:
    """(3,) t = (0, 0, -D): the head centre in the camera frame."""
    return np.array([0.0, 0.0, -_CAMERA_DISTANCE])

  @property
  def focal(self) -> float:
    """Focal length f = D * scale, pixels."""
    return _CAMERA_DISTANCE * float(self.pose.scale)

  @property
  def principal_point(self) -> np.ndarray:
    """(2,) principal point c, pixels: the head centre's pixel (pose.centre),
    not the image centre."""
    return np.asarray(self.pose.centre, np.float64).copy()

  @property
  def intrinsics(self) -> np.ndarray:
    """(3, 3) K = [[f, 0, c_x], [0, f, c_y], [0, 0, 1]]."""
    cx, cy = self.principal_point
    return np.array([[self.focal, 0.0, cx], [0.0, self.focal, cy],
                     [0.0, 0.0, 1.0]])

  def to_camera(self, p: np.ndarray) -> np.ndarray:
    """Head coordinates (..., 3) -> the rotated head frame R p (origin at
    the head centre)."""
    return p @ self.rot.T

  def camera_frame(self, p: np.ndarray) -> np.ndarray:
    """Head coordinates (..., 3) -> the camera frame X = R p + t (origin at
    the camera, depth -X_z)."""
    return self.to_camera(p) + self.translation

  def project(self, pc: np.ndarray) -> np.ndarray:
    """Rotated head-frame points R p (..., 3) (`to_camera`) -> pixels
    (..., 2)."""
    k = _CAMERA_DISTANCE / (_CAMERA_DISTANCE - pc[..., 2:3])
    return pc[..., :2] * k * self.pose.scale + np.asarray(self.pose.centre)


def surface_normals(u, v, f: T.FaceParams, h=1e-3) -> np.ndarray:
  du = T.surface(u + h, v, f) - T.surface(u - h, v, f)
  dv = T.surface(u, v + h, f) - T.surface(u, v - h, f)
  n = np.cross(du, dv)  # points towards +z at the face's front
  return n / (np.linalg.norm(n, axis=-1, keepdims=True) + 1e-12)


def _fix(pts: np.ndarray) -> np.ndarray:
  return np.round(pts * _ONE).astype(np.int32)


def _background(rng, size) -> np.ndarray:
  c0, c1 = rng.uniform(20, 235, size=(2, 3))
  g = np.linspace(0, 1, size, dtype=np.float32)
  if rng.random() < 0.5:
    g = g[:, None, None]
  else:
    g = g[None, :, None]
  img = (c0 * (1 - g) + c1 * g) * np.ones((size, size, 1), np.float32)
  img = img.astype(np.uint8)
  for _ in range(rng.integers(4, 22)):
    col = tuple(int(c) for c in rng.integers(0, 256, 3))
    kind = rng.integers(3)
    a = rng.uniform(-0.2, 1.2, 2) * size
    if kind == 0:
      b = a + rng.uniform(-0.5, 0.5, 2) * size
      cv2.rectangle(img, tuple(int(x) for x in a), tuple(int(x) for x in b),
                    col, -1)
    elif kind == 1:
      cv2.circle(img, tuple(int(x) for x in a),
                 int(rng.uniform(0.03, 0.3) * size), col, -1, cv2.LINE_AA)
    else:
      b = a + rng.uniform(-0.8, 0.8, 2) * size
      cv2.line(img, tuple(int(x) for x in a), tuple(int(x) for x in b), col,
               int(rng.integers(1, 8)), cv2.LINE_AA)
  k = int(rng.choice([1, 3, 5, 9]))
  if k > 1:
    img = cv2.GaussianBlur(img, (k, k), 0)
  return img


class _Face:
  """Colours and lighting of one rendered face."""

  def __init__(self, rng):
    tone = rng.uniform(0, 1)
    dark = np.array([70, 45, 35]) + rng.uniform(-10, 10, 3)
    light = np.array([235, 200, 180]) + rng.uniform(-15, 15, 3)
    self.skin = (dark * (1 - tone) + light * tone)
    self.hair = rng.choice([[25, 20, 18], [60, 40, 25], [110, 75, 40],
                            [190, 160, 110], [130, 130, 130], [160, 60, 30]])
    self.hair = np.asarray(self.hair, np.float64) + rng.uniform(-10, 10, 3)
    self.hairline = rng.uniform(-0.8, -0.55) if rng.random() > 0.1 else -1.5
    self.hair_side = rng.uniform(-0.45, 0.1)
    self.iris = rng.choice([[70, 45, 25], [40, 30, 20], [60, 100, 150],
                            [80, 110, 70], [120, 90, 50]])
    self.lip = self.skin * np.array([0.85, 0.55, 0.55]) + [25, 0, 5]
    self.cloth = rng.integers(0, 256, 3).astype(np.float64)
    light_dir = np.array([rng.uniform(-0.8, 0.8), rng.uniform(-0.9, 0.3), 1.0])
    self.light = light_dir / np.linalg.norm(light_dir)
    self.ambient = rng.uniform(0.35, 0.6)
    self.diffuse = rng.uniform(0.45, 0.75)
    self.specular = rng.uniform(0.0, 0.25)
    self.tint = rng.uniform(0.85, 1.15, 3)

  def shade(self, normals_cam: np.ndarray) -> np.ndarray:
    ndl = np.clip(normals_cam @ self.light, 0, None)
    half = self.light + np.array([0, 0, 1.0])
    half /= np.linalg.norm(half)
    spec = np.clip(normals_cam @ half, 0, None)**24
    return self.ambient + self.diffuse * ndl, self.specular * spec

  def colour(self, base, normals_cam):
    shade, spec = self.shade(normals_cam)
    c = base * (shade[..., None] * self.tint) + 255 * spec[..., None]
    return np.clip(c, 0, 255)


def _head_mesh(f: T.FaceParams, n_u=25, n_s=22):
  """Quads of the head's visible front: u across, v from crown to jaw."""
  u = np.linspace(-1.22, 1.22, n_u)
  s = np.linspace(0.0, 1.0, n_s)
  uu, ss = np.meshgrid(u, s)
  v_top = -1.3
  vv = v_top + ss * (T.jaw_v_at(f, uu) - v_top)
  return uu, vv


def _head_quads(f: T.FaceParams, cam: Camera):
  """The head mesh's quads in pixels (Q, 4, 2), with each quad's mean
  camera depth (painter's order) and farthest corner's depth (Q,)."""
  uu, vv = _head_mesh(f)
  pc = cam.to_camera(T.surface(uu, vv, f))
  px = cam.project(pc)
  quads = np.stack([px[:-1, :-1], px[:-1, 1:], px[1:, 1:], px[1:, :-1]],
                   axis=2).reshape(-1, 4, 2)
  corner_z = np.stack([pc[:-1, :-1, 2], pc[:-1, 1:, 2], pc[1:, 1:, 2],
                       pc[1:, :-1, 2]], axis=2).reshape(-1, 4)
  # The depth buffer keeps each quad's farthest corner, so any point on a
  # drawn quad passes the depth test and only a nearer surface hides it.
  return uu, vv, quads, corner_z.mean(-1), corner_z.min(-1)


def _depth_buffer(fixed_quads, depths, size):
  """(size, size) camera depth of the nearest head quad (-inf: none), the
  quads drawn in the given (painter's) order."""
  zbuf = np.full((size, size), -np.inf, np.float32)
  for pts, z in zip(fixed_quads, depths.tolist()):
    cv2.fillConvexPoly(zbuf, pts, z, cv2.LINE_8, _SHIFT)
  return zbuf


def head_depth_buffer(f: T.FaceParams, pose: Pose, size: int) -> np.ndarray:
  """The depth buffer `render` tests landmarks against, without drawing."""
  _, _, quads, qz, qz_far = _head_quads(f, Camera(pose))
  order = np.argsort(qz)
  return _depth_buffer(_fix(quads)[order], qz_far[order], size)


def project_points(cam: Camera, f: T.FaceParams, uv, depth, zbuf, size: int):
  """Pixels (N, 2) of surface points uv (N, 2) moved `depth` (N,) along
  the inward normal, and whether each is visible (N,) bool: its surface
  point faces the camera and is not behind the head surface in `zbuf` (a
  point off the surface is visible when its surface point is)."""
  uv = np.asarray(uv, np.float64).reshape(-1, 2)
  surf = cam.to_camera(T.surface(uv[:, 0], uv[:, 1], f))
  nrm = cam.to_camera(surface_normals(uv[:, 0], uv[:, 1], f))
  depth = np.broadcast_to(np.asarray(depth, np.float64), (len(uv),))
  p2 = cam.project(surf - depth[:, None] * nrm)
  s2 = cam.project(surf) if np.any(depth) else p2
  view = np.array([0, 0, _CAMERA_DISTANCE]) - surf
  view /= np.linalg.norm(view, axis=-1, keepdims=True)
  facing_pt = np.einsum('ij,ij->i', nrm, view) > 0.08
  ix = np.clip(np.round(s2).astype(int), 0, size - 1)
  inside = np.all((s2 >= 0) & (s2 <= size - 1), axis=-1)
  depth_ok = surf[:, 2] >= zbuf[ix[:, 1], ix[:, 0]] - 0.08
  return p2, facing_pt & (depth_ok | ~inside)


def render(rng: np.random.Generator, f: T.FaceParams, pose: Pose,
           points_uv: dict[str, np.ndarray], size: int = 256,
           occlusion_prob: float = 0.4,
           noise_rng: np.random.Generator | None = None):
  """Renders face f under pose; returns image and per-layout landmark info.

  Args:
    rng: source of the look (colours, clutter, occluders).
    f: identity and expression.
    pose: head pose and framing.
    points_uv: {layout: (N, 2) surface coordinates} of the landmarks.
    size: output side in pixels.
    occlusion_prob: probability of drawing random occluders.
    noise_rng: when given, the source of the final pixel noise field
      instead of `rng` (which still draws everything else, so the image
      differs from the default one by its noise field only).

  Returns:
    image (size, size, 3) uint8 RGB, and {layout: dict(points (N, 2) pixels,
    visible (N,) bool: not self-occluded, occluded (N,) bool: under an
    occluder)}.
  """
  cam = Camera(pose)
  look = _Face(rng)
  img = _background(rng, size)

  # Shoulders and neck (drawn first: the head covers them).
  neck3d = np.array([[-0.42, 0.55, -0.15], [0.42, 0.55, -0.15],
                     [0.5, 2.6, -0.3], [-0.5, 2.6, -0.3]])
  neck_rot = rotation(pose.yaw * 0.3, 0, pose.roll * 0.5)
  neck = cam.project(neck3d @ neck_rot.T)
  base = neck[2:].mean(0)
  w = pose.scale * rng.uniform(1.6, 2.4)
  shoulders = np.array([base + [-w, 0.2 * w], base + [w, 0.2 * w],
                        base + [w * 1.3, 3 * w], base + [-w * 1.3, 3 * w]])
  cv2.fillConvexPoly(img, _fix(shoulders), look.cloth.tolist(), cv2.LINE_AA,
                     _SHIFT)
  cv2.fillConvexPoly(img, _fix(neck), (look.skin * 0.7).tolist(), cv2.LINE_AA,
                     _SHIFT)

  # Head mesh in painter's order, with a depth buffer (camera z, larger is
  # nearer).
  uu, vv, quads, qz, qz_far = _head_quads(f, cam)
  uc = 0.5 * (uu[:-1, :-1] + uu[1:, 1:])
  vc = 0.5 * (vv[:-1, :-1] + vv[1:, 1:])
  n = cam.to_camera(surface_normals(uc, vc, f)).reshape(-1, 3)
  hair = ((vc < look.hairline + 0.35 * uc**2) |
          ((np.abs(uc) > 0.8) & (vc < look.hair_side))).reshape(-1)
  bases = np.where(hair[:, None], look.hair[None], look.skin[None])
  # Albedo, normals and depth are rasterised per quad; the normal map is then
  # smoothed and shaded per pixel (Gouraud-like, without visible facets).
  albedo = np.zeros((size, size, 3), np.float32)
  normal_map = np.zeros((size, size, 3), np.float32)
  order = np.argsort(qz)
  fixed = _fix(quads)[order]
  for pts, a, nq in zip(fixed, bases[order].tolist(), n[order].tolist()):
    cv2.fillConvexPoly(albedo, pts, a, cv2.LINE_8, _SHIFT)
    cv2.fillConvexPoly(normal_map, pts, nq, cv2.LINE_8, _SHIFT)
  zbuf = _depth_buffer(fixed, qz_far[order], size)
  # Shade only inside the head's bounding box.
  lo = np.clip(np.floor(quads.reshape(-1, 2).min(0)).astype(int) - 2, 0, size)
  hi = np.clip(np.ceil(quads.reshape(-1, 2).max(0)).astype(int) + 3, 0, size)
  win = (slice(lo[1], hi[1]), slice(lo[0], hi[0]))
  if hi[0] > lo[0] and hi[1] > lo[1]:
    sigma = max(pose.scale * 0.04, 1.0)
    nm = cv2.GaussianBlur(normal_map[win], (0, 0), sigma)
    nm /= np.linalg.norm(nm, axis=-1, keepdims=True) + 1e-6
    shaded = look.colour(cv2.GaussianBlur(albedo[win], (0, 0), 0.8), nm)
    head = np.isfinite(zbuf[win])
    img[win][head] = shaded[head].astype(np.uint8)

  _draw_features(img, zbuf, f, cam, look)

  # Landmarks: projection, self-occlusion (back-facing or behind the head
  # surface in the depth buffer).
  out = {}
  for name, uv in points_uv.items():
    p2, visible = project_points(cam, f, uv, 0.0, zbuf, size)
    out[name] = dict(points=p2.astype(np.float32), visible=visible,
                     occluded=np.zeros(len(uv), bool))

  if rng.random() < occlusion_prob:
    mask = _draw_occluders(img, rng, out, size)
    for v in out.values():
      ix = np.clip(np.round(v['points']).astype(int), 0, size - 1)
      v['occluded'] = mask[ix[:, 1], ix[:, 0]] > 0

  img = _finish(img, rng, noise_rng)
  return img, out


def _poly(cam, f, uv_pairs):
  """Projects a (u, v) polyline on the surface: pixels (M, 2), mean depth."""
  u, v = uv_pairs
  pc = cam.to_camera(T.surface(u, v, f))
  return cam.project(pc), float(pc[:, 2].mean())


def _draw_features(img, zbuf, f: T.FaceParams, cam: Camera, look: _Face):
  """Eyes, brows, nose, lips, depth-tested against the head surface."""
  size = img.shape[0]
  layer = img.copy()
  fz = np.full((size, size), -np.inf, np.float32)
  face_n = cam.to_camera(np.array([0.0, 0.0, 1.0]))
  shade = float(look.shade(face_n[None])[0][0])

  def fill(pts, z, colour):
    p = _fix(pts)
    cv2.fillPoly(layer, [p], np.clip(colour, 0, 255).tolist(), cv2.LINE_AA,
                 _SHIFT)
    cv2.fillPoly(fz, [p], z, cv2.LINE_8, _SHIFT)

  def line(pts, z, colour, thickness):
    p = _fix(pts)
    cv2.polylines(layer, [p], False, np.clip(colour, 0, 255).tolist(),
                  thickness, cv2.LINE_AA, _SHIFT)
    cv2.polylines(fz, [p], False, z, thickness, cv2.LINE_8, _SHIFT)

  t = np.linspace(0, 1, 12)
  tt = np.linspace(-1, 1, 17)
  ang = np.linspace(0, 2 * np.pi, 28, endpoint=False)
  for side in (-1, 1):
    # Brow.
    up = T.brow_upper(f, side, t)
    lo = T.brow_lower(f, side, t[::-1])
    pts, z = _poly(cam, f, (np.r_[up[0], lo[0]], np.r_[up[1], lo[1]]))
    fill(pts, z, look.hair * shade * 0.8)
    # Eye: white, iris and pupil clipped to the eye opening, lids.
    eye_uv = T.eye(f, side, ang)
    pts, z = _poly(cam, f, eye_uv)
    eye_mask = np.zeros((size, size), np.uint8)
    cv2.fillPoly(eye_mask, [_fix(pts)], 255, cv2.LINE_8, _SHIFT)
    fill(pts, z, np.array([225, 222, 215]) * shade)
    pu, pv = T.pupil(f, side)
    circ = np.linspace(0, 2 * np.pi, 16, endpoint=False)
    tmp = layer.copy()
    for r, col in ((f.iris_r, look.iris * shade), (f.iris_r * 0.45,
                                                   np.zeros(3) + 10)):
      cpts, _ = _poly(cam, f, (pu + r * np.cos(circ), pv + r * np.sin(circ)))
      cv2.fillPoly(tmp, [_fix(cpts)], np.clip(col, 0, 255).tolist(),
                   cv2.LINE_AA, _SHIFT)
    sel = eye_mask > 0
    layer[sel] = tmp[sel]
    upper = T.eye(f, side, np.linspace(0, np.pi, 14))
    pts, z = _poly(cam, f, upper)
    line(pts, z, look.hair * 0.4, 2)
    lower = T.eye(f, side, np.linspace(np.pi, 2 * np.pi, 14))
    pts, z = _poly(cam, f, lower)
    line(pts, z, look.skin * shade * 0.6, 1)
    # Nostril.
    nu = side * 0.5 * f.nose_w
    pts, z = _poly(cam, f, (nu + 0.025 * np.cos(circ),
                            f.nose_base - 0.015 + 0.012 * np.sin(circ)))
    fill(pts, z, look.skin * shade * 0.3)
  # Lips and mouth.
  ou, il, iu, ol = (T.lip_outer_upper(f, tt), T.lip_inner_lower(f, tt),
                    T.lip_inner_upper(f, tt), T.lip_outer_lower(f, tt))
  if f.mouth_open > 0.01:
    pts, z = _poly(cam, f, (np.r_[iu[0], il[0][::-1]],
                            np.r_[iu[1], il[1][::-1]]))
    fill(pts, z, np.array([60, 20, 25]) * shade)
  pts, z = _poly(cam, f, (np.r_[ou[0], iu[0][::-1]], np.r_[ou[1], iu[1][::-1]]))
  fill(pts, z, look.lip * shade * 0.9)
  pts, z = _poly(cam, f, (np.r_[il[0], ol[0][::-1]], np.r_[il[1], ol[1][::-1]]))
  fill(pts, z, look.lip * shade)
  pts, z = _poly(cam, f, iu)
  line(pts, z, look.lip * shade * 0.45, 1)
  show = np.isfinite(fz) & (fz >= zbuf - 0.06)
  img[show] = layer[show]


def _draw_occluders(img, rng, out, size):
  mask = np.zeros((size, size), np.uint8)
  anchors = np.concatenate([v['points'] for v in out.values()])
  for _ in range(rng.integers(1, 3)):
    c = anchors[rng.integers(len(anchors))] + rng.normal(0, 8, 2)
    side = float(np.clip(rng.normal(0.2, 0.08), 0.08, 0.4)) * size
    col = tuple(int(x) for x in rng.integers(0, 256, 3))
    kind = rng.integers(3)
    angle = rng.uniform(0, 180)
    if kind == 0:  # a blob (hand, microphone, ...)
      axes = (int(side / 2), int(side * rng.uniform(0.25, 0.6)))
      for m, colour in ((img, col), (mask, 255)):
        cv2.ellipse(m, (int(c[0]), int(c[1])), axes, angle, 0, 360, colour,
                    -1, cv2.LINE_AA)
    else:  # a bar or a box (glasses, a scarf, a sign)
      w, h = (side * 1.4, side * 0.3) if kind == 1 else (side, side * 0.8)
      box = cv2.boxPoints(((float(c[0]), float(c[1])), (w, h), angle))
      for m, colour in ((img, col), (mask, 255)):
        cv2.fillConvexPoly(m, _fix(box), colour, cv2.LINE_AA, _SHIFT)
    if rng.random() < 0.5:  # some texture
      noise = rng.normal(0, 18, img.shape).astype(np.float32)
      sel = mask > 0
      img[sel] = np.clip(img[sel] + noise[sel], 0, 255).astype(np.uint8)
  return mask


def _finish(img, rng, noise_rng=None):
  """Blur, gain and bias, pixel noise, sometimes grey; all from `rng`, but
  the noise field from `noise_rng` when given (`rng` still draws its own,
  discarded, so every other draw is the default one)."""
  out = img.astype(np.float32)
  sigma = rng.uniform(0.0, 1.2)
  if sigma > 0.3:
    out = cv2.GaussianBlur(out, (0, 0), sigma)
  out = out * rng.uniform(0.75, 1.25) + rng.uniform(-25, 25)
  noise = rng.standard_normal(out.shape, dtype=np.float32)
  if noise_rng is not None:
    noise = noise_rng.standard_normal(out.shape, dtype=np.float32)
  out += noise * rng.uniform(0, 7)
  if rng.random() < 0.1:
    out[:] = out.mean(-1, keepdims=True)
  return np.clip(out, 0, 255).astype(np.uint8)
