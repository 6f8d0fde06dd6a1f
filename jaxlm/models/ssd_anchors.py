"""SSD anchors as MediaPipe's SsdAnchorsCalculator makes them for BlazeFace.

MediaPipe (calculators/tflite/ssd_anchors_calculator.cc) walks `strides`;
consecutive layers of one stride share a feature map of
ceil(input / stride) cells per side and put, per layer, one anchor of
aspect ratio 1 plus, when `interpolated_scale_aspect_ratio` is 1.0, one more
(so 2 per layer). Centres are ((x + offset) / cells, (y + offset) / cells)
for cell x, y, offset 0.5, in [0, 1] units of the model input (x right,
y down), row-major over cells, the anchors of a cell contiguous. All
BlazeFace models use `fixed_anchor_size: true`: every anchor is 1 x 1, so
the scales (`min_scale` 0.1484375 / 0.15625, `max_scale` 0.75) have no
effect and only centres are returned.

`OPTIONS` are the values of MediaPipe's face_detection graphs:
short range (face_detection_short_range_common.pbtxt): 128 px, strides
8, 16, 16, 16, interpolated ratio 1.0 -> 16x16x2 + 8x8x6 = 896;
full range (face_detection_full_range_common.pbtxt): 192 px, stride 4,
interpolated ratio 0.0 -> 48x48x1 = 2304;
back camera (face_detection_back_desktop_live.pbtxt): 256 px, strides 16,
32, 32, 32, interpolated ratio 1.0 -> 16x16x2 + 8x8x6 = 896.
"""

from __future__ import annotations

import math

import numpy as np

OPTIONS = {
    'short': dict(input_size=128, strides=(8, 16, 16, 16),
                  interpolated_scale_aspect_ratio=1.0),
    'full': dict(input_size=192, strides=(4,),
                 interpolated_scale_aspect_ratio=0.0),
    'back': dict(input_size=256, strides=(16, 32, 32, 32),
                 interpolated_scale_aspect_ratio=1.0),
}


def ssd_anchor_centres(input_size: int, strides, interpolated_scale_aspect_ratio
                       : float = 1.0, offset: float = 0.5) -> np.ndarray:
  """(N, 2) anchor centres (x, y) in [0, 1] input units, MediaPipe's order."""
  out, layer = [], 0
  while layer < len(strides):
    last, per_cell = layer, 0
    while last < len(strides) and strides[last] == strides[layer]:
      per_cell += 2 if interpolated_scale_aspect_ratio == 1.0 else 1
      last += 1
    cells = math.ceil(input_size / strides[layer])
    c = (np.arange(cells, dtype=np.float64) + offset) / cells
    ys, xs = np.meshgrid(c, c, indexing='ij')
    grid = np.stack([xs, ys], -1).reshape(-1, 1, 2)
    out.append(np.repeat(grid, per_cell, axis=1).reshape(-1, 2))
    layer = last
  return np.concatenate(out).astype(np.float32)


def blazeface_anchors(variant: str) -> np.ndarray:
  """(N, 2) anchor centres of a BlazeFace model ('short', 'full', 'back')."""
  return ssd_anchor_centres(**OPTIONS[variant])
