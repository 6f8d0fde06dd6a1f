"""COCO-style keypoint JSON (the form mmpose ships its face samples in).

`images` [{id, file_name, width, height}], `annotations` [{image_id,
keypoints: [x, y, v] * N, bbox: [x, y, w, h]}], 0-based pixels. v = 0: not
labelled (no position), 1: labelled but occluded, 2: visible.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np
from etils import epath

from jaxlm.data.formats import FaceRecord, FormatError, check_record
from jaxlm.data.formats import read_json
from jaxlm.data.formats import parse_each


def read_coco(path, images_dir, *, layout: str, dataset: str,
              num_points: int, on_error=None) -> Iterator[FaceRecord]:
  path, images_dir = epath.Path(path), epath.Path(images_dir)
  d = read_json(path)
  images = {im['id']: im for im in d.get('images', [])}

  def parse(item):
    k, a = item
    where = f'{path}: annotations[{k}]'
    if a.get('image_id') not in images:
      raise FormatError(f'{where}: image_id {a.get("image_id")} not in images')
    kp = np.asarray(a.get('keypoints', []), np.float64)
    if kp.size != 3 * num_points:
      raise FormatError(f'{where}: {kp.size // 3} keypoints, the {layout} '
                        f'layout has {num_points}')
    kp = kp.reshape(num_points, 3)
    points = kp[:, :2].copy()
    points[kp[:, 2] == 0] = np.nan
    x, y, w, h = [float(v) for v in a['bbox']]
    return check_record(FaceRecord(
        image_path=str(images_dir / images[a['image_id']]['file_name']),
        landmarks=points, visible=kp[:, 2] == 2,
        box=np.array([x, y, x + w, y + h]), layout=layout, dataset=dataset,
        where=where), num_points)

  return parse_each(enumerate(d.get('annotations', [])), parse, on_error)
