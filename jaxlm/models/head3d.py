"""The 3D head of infinite 3D landmarks (Chandran et al. 2024, paper 001).

Beside the image descriptor f, the feature extractor predicts the head pose
and the camera (the paper's γ_i); the predictor P gives each query's landmark
in the canonical 3D space, which is posed and projected to the normalised
image I' (paper Fig. 1).

Frames (the synthetic renderer's, `data/synthetic/render.py`):
  canonical 3D: head coordinates of the template (x right, y down, z toward
    the camera, half-width about 1);
  camera: X = R L + t, the head rotated by R and moved by t; its axes are
    the head frame's at zero pose (x right, y down, z from the scene toward
    the camera: the camera looks along -z), so a point's depth is -X_z and
    t_z < 0 (the renderer's `Camera.camera_frame`);
  screen: I' normalised coordinates in [-1, 1] (x right, y down, the
    image's edges at ±1; crop units c = (s + 1) / 2),
      s = f · X_xy / (-X_z) + c_p,
    f the focal length in screen units (half the image side is 1), c_p the
    principal point (0 unless `principal_point`).
The renderer's own camera is this one with t = (0, 0, -8), f = 8 · scale
(pixels; 16 · scale / S screen units) and c_p at the head centre's pixel.

Choices the paper leaves open (proposals, measured in
`benchmarks/infinite3d_synthetic.py`):
  - rotation as the 6D representation of Zhou et al. (CVPR 2019): two
    3-vectors, Gram-Schmidt -> the first two columns of R; the head starts
    at R = I;
  - t_z = -z0 · e^a (positive depth), z0 = 8 (the renderer's distance);
    t_xy raw, in head units;
  - f = f0 · e^b, f0 = 8: f / t_z = 1 screen unit per head unit at start,
    about the scale of a crop-rule face;
  - the principal point is off by default (fixed at I' centre): the
    spatial transformer centres the face in I', where the renderer's
    off-centre principal point becomes nearly central; `principal_point`
    predicts it (two more outputs);
  - the output layer starts at zero, so every untrained face has the same
    pose and camera and gradients reach f through the kernel; its input is
    f / sqrt(width), so that one Adam step moves the pose by about the
    learning rate.
"""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp

Z0 = 8.0  # initial depth -t_z, head units (the renderer's camera distance)
F0 = 8.0  # initial focal length, screen units
MIN_DEPTH = 0.1  # depth floor of the projection, head units


def rotation_from_6d(x):
  """(..., 6) -> (..., 3, 3) rotation matrices (Zhou et al. 2019).

  The two 3-vectors a1 = x[..., :3], a2 = x[..., 3:] are orthonormalised
  (b1 = a1 / |a1|, b2 = the unit part of a2 orthogonal to b1, b3 = b1 × b2)
  and become R's columns, so (1, 0, 0, 0, 1, 0) is the identity.
  """
  a1, a2 = x[..., :3], x[..., 3:]
  b1 = a1 / jnp.sqrt((a1 ** 2).sum(-1, keepdims=True) + 1e-12)
  a2 = a2 - (b1 * a2).sum(-1, keepdims=True) * b1
  b2 = a2 / jnp.sqrt((a2 ** 2).sum(-1, keepdims=True) + 1e-12)
  b3 = jnp.cross(b1, b2)
  return jnp.stack([b1, b2, b3], axis=-1)


def project(points, rotation, translation, focal, principal_point=None):
  """Canonical 3D points -> screen units of I' (see the module docstring).

  Args:
    points: (B, N, 3) canonical 3D landmarks L.
    rotation: (B, 3, 3).
    translation: (B, 3), -t_z the head centre's depth.
    focal: (B,) screen units.
    principal_point: (B, 2) screen units, or None (0).

  Returns:
    (screen (B, N, 2), depth (B, N) of each point, before the floor).
  """
  x = camera_points(points, rotation, translation)
  depth = -x[..., 2]
  screen = focal[:, None, None] * x[..., :2] / jnp.maximum(
      depth, MIN_DEPTH)[..., None]
  if principal_point is not None:
    screen = screen + principal_point[:, None, :]
  return screen, depth


def camera_points(points, rotation, translation):
  """Canonical 3D points (B, N, 3) -> the camera frame X = R L + t
  (B, N, 3), depth -X_z."""
  return jnp.einsum('bij,bnj->bni', rotation, points) + translation[:, None]


class PoseCameraHead(nn.Module):
  """f (B, D) -> head pose and camera (the paper's γ_i).

  Returns dict(rotation (B, 3, 3), translation (B, 3) with t_z < 0, focal
  (B,) screen units, principal_point (B, 2) or absent).
  """
  principal_point: bool = False

  @nn.compact
  def __call__(self, f):
    n = 6 + 3 + 1 + (2 if self.principal_point else 0)
    # f / sqrt(width): a zero-initialised head moves by about lr per Adam
    # step, not lr x (sum of |f|) (see spatial_transformer.py)
    f = f.astype(jnp.float32) / jnp.sqrt(float(f.shape[-1]))
    raw = nn.Dense(n, kernel_init=nn.initializers.zeros, name='out')(f)
    six = raw[:, :6] + jnp.array([1.0, 0, 0, 0, 1.0, 0])
    t = jnp.concatenate([raw[:, 6:8], -Z0 * jnp.exp(raw[:, 8:9])], axis=-1)
    out = dict(rotation=rotation_from_6d(six), translation=t,
               focal=F0 * jnp.exp(raw[:, 9]))
    if self.principal_point:
      out['principal_point'] = raw[:, 10:12]
    return out


def euler_angles(rotation):
  """(..., 3, 3) -> (..., 3) (yaw, pitch, roll) degrees of the renderer's
  convention R = R_z(roll) R_x(pitch) R_y(yaw) (`render.rotation`; pitch
  within ±90°)."""
  r = rotation
  pitch = jnp.arcsin(jnp.clip(r[..., 2, 1], -1.0, 1.0))
  yaw = jnp.arctan2(-r[..., 2, 0], r[..., 2, 2])
  roll = jnp.arctan2(-r[..., 0, 1], r[..., 1, 1])
  return jnp.degrees(jnp.stack([yaw, pitch, roll], axis=-1))
