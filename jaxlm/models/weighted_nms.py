"""Weighted non-maximum suppression (MediaPipe's NonMaxSuppressionCalculator,
algorithm WEIGHTED, overlap INTERSECTION_OVER_UNION), fixed-size and jittable.

MediaPipe's loop over the detections above the score threshold: take the
highest-scoring remaining detection; its cluster is every remaining
detection (itself included) whose IoU with it exceeds `iou_threshold`; emit
the score-weighted mean of the cluster's box corners and keypoints with the
top detection's score; remove the cluster; repeat until none remain.

Here the loop runs exactly `max_faces` times (`lax.fori_loop`) over fixed
(N,) masks, so the output has a static shape (K = max_faces) and the whole
thing jits and vmaps: slots after the last face have score 0 and zero
boxes and keypoints. Faces come out by decreasing score. Differences from
MediaPipe: at most K faces (MediaPipe's weighted NMS has no cap); a
detection whose box has zero area still forms its own cluster (MediaPipe
stops at it); invalid boxes (x1 <= x0 or y1 <= y0) are dropped up front as
MediaPipe's decoder does.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def iou(box, boxes):
  """IoU of one box (4,) with boxes (N, 4), both x0, y0, x1, y1 -> (N,)."""
  lo = jnp.maximum(box[:2], boxes[:, :2])
  hi = jnp.minimum(box[2:], boxes[:, 2:])
  inter = jnp.prod(jnp.clip(hi - lo, 0), axis=-1)
  area = jnp.prod(box[2:] - box[:2])
  areas = jnp.prod(boxes[:, 2:] - boxes[:, :2], axis=-1)
  union = area + areas - inter
  return jnp.where(union > 0, inter / jnp.where(union > 0, union, 1), 0.)


def weighted_nms(boxes, keypoints, scores, max_faces: int,
                 iou_threshold: float = 0.3, min_score: float = 0.5):
  """The top `max_faces` faces of one image after weighted NMS.

  Args:
    boxes: (N, 4) x0, y0, x1, y1 (any units; IoU is scale-free).
    keypoints: (N, P, 2) in the same units.
    scores: (N,) in [0, 1]; detections below `min_score` are ignored.
    max_faces: K, the static number of output slots.
    iou_threshold: a detection joins a cluster when IoU > this (0.3 in
      MediaPipe's face detection graphs).
    min_score: MediaPipe's min_score_thresh (0.5 short range, 0.6 full
      range, 0.65 back camera).

  Returns:
    boxes (K, 4), keypoints (K, P, 2), scores (K,): by decreasing score;
    empty slots have score 0 and zeros elsewhere.
  """
  boxes = jnp.asarray(boxes, jnp.float32)
  keypoints = jnp.asarray(keypoints, jnp.float32)
  scores = jnp.asarray(scores, jnp.float32)
  valid = jnp.all(boxes[:, 2:] > boxes[:, :2], axis=-1)
  active0 = (scores >= min_score) & valid
  out_b = jnp.zeros((max_faces, 4), jnp.float32)
  out_k = jnp.zeros((max_faces,) + keypoints.shape[1:], jnp.float32)
  out_s = jnp.zeros((max_faces,), jnp.float32)

  def step(i, carry):
    active, ob, ok, os = carry
    masked = jnp.where(active, scores, -1.0)
    top = jnp.argmax(masked)
    found = masked[top] >= 0
    cluster = active & ((iou(boxes[top], boxes) > iou_threshold)
                        | (jnp.arange(scores.shape[0]) == top))
    w = jnp.where(cluster, scores, 0.)
    total = jnp.maximum(w.sum(), 1e-12)
    box = (w[:, None] * boxes).sum(0) / total
    kp = (w[:, None, None] * keypoints).sum(0) / total
    ob = ob.at[i].set(jnp.where(found, box, 0.))
    ok = ok.at[i].set(jnp.where(found, kp, 0.))
    os = os.at[i].set(jnp.where(found, scores[top], 0.))
    return active & ~cluster, ob, ok, os

  _, out_b, out_k, out_s = jax.lax.fori_loop(
      0, max_faces, step, (active0, out_b, out_k, out_s))
  return out_b, out_k, out_s
