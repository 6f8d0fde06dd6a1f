"""Faces followed across a video's frames, each track smoothed on its own.

Tracking is greedy box IoU from one processed frame to the next: the pairs
(face, track) are taken in order of falling IoU while both are free and the
IoU is at least `min_iou`; a face left over starts a new track, and a track
unseen for more than `max_gap` processed frames ends. Each track's landmarks
go through their own One-Euro filter (`one_euro.py`), so two people in one
shot never blur into each other. Coordinates: image pixels.
"""

from __future__ import annotations

import numpy as np

from jaxlm.one_euro import OneEuroFilter


def box_iou(a, b) -> float:
  """Intersection over union of two (x0, y0, x1, y1) boxes."""
  ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
  iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
  inter = ix * iy
  union = ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) -
           inter)
  return inter / union if union > 0 else 0.0


class FaceTracks:
  """The face tracks of one video.

  Attributes:
    min_iou: the least box IoU that continues a track.
    max_gap: processed frames a track may go unseen before it ends.
    smooth: One-Euro settings (`OneEuroFilter`'s rate, min_cutoff, beta,
      d_cutoff; beta in 1 / pixel), or None for no smoothing.
  """

  def __init__(self, min_iou: float = 0.3, max_gap: int = 5,
               smooth: dict | None = None):
    self.min_iou, self.max_gap, self.smooth = min_iou, max_gap, smooth
    self._tracks = {}  # id -> [last box, frames since seen, filter]
    self._next = 0

  def update(self, boxes, landmarks) -> tuple[list[int], list]:
    """One processed frame's faces (boxes, (N, 2) landmarks each) -> their
    track ids and smoothed landmarks (None each without smoothing)."""
    pairs = sorted(((box_iou(b, t[0]), i, tid) for i, b in enumerate(boxes)
                    for tid, t in self._tracks.items()), reverse=True)
    ids = [None] * len(boxes)
    taken = set()
    for iou, i, tid in pairs:
      if iou < self.min_iou:
        break
      if ids[i] is None and tid not in taken:
        ids[i] = tid
        taken.add(tid)
    for tid in list(self._tracks):
      if tid not in taken:
        self._tracks[tid][1] += 1
        if self._tracks[tid][1] > self.max_gap:
          del self._tracks[tid]
    smoothed = []
    for i, box in enumerate(boxes):
      if ids[i] is None:
        ids[i], self._next = self._next, self._next + 1
        filt = OneEuroFilter(**self.smooth) if self.smooth is not None else None
        self._tracks[ids[i]] = [box, 0, filt]
      track = self._tracks[ids[i]]
      track[0], track[1] = box, 0
      filt = track[2]
      smoothed.append(None if filt is None else
                      filt(np.asarray(landmarks[i], np.float64)))
    return ids, smoothed
