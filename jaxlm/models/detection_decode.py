"""SSD regressors -> face boxes, keypoints and scores, as MediaPipe decodes
BlazeFace (calculators/tensor/tensors_to_detections_calculator.cc with the
face_detection graphs' options: reverse_output_order, no exponential on box
sizes, x/y/w/h scales = the input size, sigmoid scores clipped at +-100).

Per anchor with centre (a_x, a_y) in [0, 1] input units and fixed size 1:
  x_c = r[0] / S + a_x,  y_c = r[1] / S + a_y,  w = r[2] / S,  h = r[3] / S
  box = (x_c - w / 2, y_c - h / 2, x_c + w / 2, y_c + h / 2)
  keypoint k = (r[4 + 2k] / S + a_x, r[5 + 2k] / S + a_y),  k = 0..5
  score = sigmoid(clip(logit, -100, 100))
with S the model's input size; everything in [0, 1] units of the (square,
letterboxed) model input, x right, y down. BlazeFace's six keypoints are
right eye, left eye, nose tip, mouth centre, right ear tragion, left ear
tragion, "right"/"left" from the subject's point of view as MediaPipe names
them (the eye at smaller x in an unmirrored photo is the subject's right).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

NUM_KEYPOINTS = 6
SCORE_CLIP = 100.0  # MediaPipe's score_clipping_thresh


def decode_detections(regressors, logits, anchors, input_size: int):
  """Boxes, keypoints and scores of every anchor.

  Args:
    regressors: (..., N, 16) raw box regressors (input pixels).
    logits: (..., N) raw scores.
    anchors: (N, 2) anchor centres (x, y) in [0, 1] input units.
    input_size: S, the model's input side in pixels.

  Returns:
    boxes (..., N, 4) x0, y0, x1, y1; keypoints (..., N, 6, 2) x, y, both in
    [0, 1] input units; scores (..., N) in [0, 1].
  """
  r = jnp.asarray(regressors, jnp.float32) / input_size
  a = jnp.asarray(anchors, jnp.float32)
  centre = r[..., 0:2] + a
  half = r[..., 2:4] / 2
  boxes = jnp.concatenate([centre - half, centre + half], axis=-1)
  kp = r[..., 4:4 + 2 * NUM_KEYPOINTS].reshape(
      r.shape[:-1] + (NUM_KEYPOINTS, 2)) + a[:, None, :]
  scores = jax.nn.sigmoid(jnp.clip(jnp.asarray(logits, jnp.float32),
                                   -SCORE_CLIP, SCORE_CLIP))
  return boxes, kp, scores
