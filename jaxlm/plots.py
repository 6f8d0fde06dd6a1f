"""Report figures: CED curves and landmark overlays (PNG)."""

from __future__ import annotations

from pathlib import Path

import cv2
import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from jaxlm import metrics  # noqa: E402
from jaxlm.errors import JaxlmError  # noqa: E402


def plot_ced(curves: dict[str, np.ndarray], path, alpha=0.1, title='CED'):
  """Writes a CED plot of {label: per-sample NMEs} to `path`."""
  fig, ax = plt.subplots(figsize=(5, 4), dpi=100)
  for label, nmes in curves.items():
    nmes = np.asarray(nmes)
    nmes = nmes[np.isfinite(nmes)]
    grid, frac = metrics.ced(nmes, alpha)
    ax.plot(grid * 100, frac,
            label=f'{label} (AUC {metrics.auc(nmes, alpha):.3f})')
  ax.set_xlabel('NME (%)')
  ax.set_ylabel('fraction of test faces')
  ax.set_xlim(0, alpha * 100)
  ax.set_ylim(0, 1)
  ax.grid(alpha=0.3)
  ax.set_title(title)
  ax.legend(loc='upper left', fontsize=8)
  fig.tight_layout()
  fig.savefig(path)
  plt.close(fig)


def draw_landmarks(image_rgb, points, colour=(0, 255, 0), gt=None,
                   visible=None, radius=None):
  """Returns a copy of image_rgb with points (and optionally gt) drawn.

  points/gt: (N, 2) pixels. Invisible points (visible False) are hollow.
  """
  img = np.ascontiguousarray(image_rgb).copy()
  r = radius or max(1, round(min(img.shape[:2]) / 160))
  if gt is not None:
    for x, y in np.asarray(gt):
      cv2.circle(img, (int(round(x)), int(round(y))), r, (255, 60, 60), -1,
                 cv2.LINE_AA)
  for i, (x, y) in enumerate(np.asarray(points)):
    filled = -1 if visible is None or visible[i] else 1
    cv2.circle(img, (int(round(x)), int(round(y))), r, colour, filled,
               cv2.LINE_AA)
  return img


def draw_description(image_rgb, described, landmarks,
                     colour=(255, 200, 0)):
  """A copy of image_rgb with a family's description drawn
  (`Predictor.detect`'s 'described', image pixels): each point set of
  three or more points (an RoI) as a closed polygon, and a 'rotation'
  (3, 3) as the head's axes (x red, y green, z blue, the renderer's head
  frame) at the landmarks' centre."""
  img = np.ascontiguousarray(image_rgb).copy()
  t = max(1, round(min(img.shape[:2]) / 200))
  for value in described.values():
    v = np.asarray(value)
    if v.ndim == 2 and v.shape[1] == 2 and len(v) >= 3:
      cv2.polylines(img, [np.round(v).astype(np.int32)], True, colour, t,
                    cv2.LINE_AA)
  if 'rotation' in described:
    r = np.asarray(described['rotation'], np.float64)
    pts = np.asarray(landmarks, np.float64)
    centre = pts.mean(0)
    length = 0.4 * float((pts.max(0) - pts.min(0)).max())
    for k, c in enumerate(((255, 0, 0), (0, 255, 0), (0, 0, 255))):
      tip = centre + length * r[:2, k]
      cv2.line(img, tuple(np.round(centre).astype(int).tolist()),
               tuple(np.round(tip).astype(int).tolist()), c, t, cv2.LINE_AA)
  return img


def tile(images, cols=4):
  """Grid of equally sized RGB images."""
  images = list(images)
  h, w = images[0].shape[:2]
  rows = -(-len(images) // cols)
  out = np.zeros((rows * h, cols * w, 3), np.uint8)
  for i, im in enumerate(images):
    r, c = divmod(i, cols)
    out[r * h:(r + 1) * h, c * w:(c + 1) * w] = im
  return out


IMAGE_SUFFIXES = ('.png', '.jpg', '.jpeg', '.bmp', '.webp', '.tif', '.tiff')


def save_rgb(path, image_rgb):
  """Writes an RGB image (format by suffix), creating missing folders;
  JaxlmError naming the path when it cannot."""
  path = Path(path)
  if path.suffix.lower() not in IMAGE_SUFFIXES:
    suffix = path.suffix or '(no suffix)'
    raise JaxlmError(f'{path}: unknown image format {suffix}; use one of '
                     f'{", ".join(IMAGE_SUFFIXES)}')
  try:
    path.parent.mkdir(parents=True, exist_ok=True)
    ok = cv2.imwrite(str(path), np.ascontiguousarray(image_rgb[..., ::-1]))
  except (OSError, cv2.error) as e:
    raise JaxlmError(f'cannot write {path}: {e}') from None
  if not ok:
    raise JaxlmError(f'cannot write {path} (permissions or disk space?)')


def synthetic_preview(layout: str, out, num: int = 16, start: int = 0,
                      seed: int = 0, size: int = 256,
                      landmarks: bool = False):
  """`jaxlm synth`: synthetic faces `start..start+num` of `layout` (with
  their landmarks, invisible ones marked) as one .png grid or a folder of
  .png files."""
  from jaxlm.data import synthetic  # pylint: disable=g-import-not-at-top
  if layout not in synthetic.SYNTHETIC_LAYOUTS:
    raise JaxlmError(f'--layout {layout!r}: not a synthetic layout (known: '
                     f'{", ".join(synthetic.SYNTHETIC_LAYOUTS)})')
  ds = synthetic.SyntheticFaces(layout, start + num, seed=seed,
                                image_size=size)
  out = Path(out)
  tiles = []
  for i in range(start, start + num):
    s = ds[i]
    tiles.append(draw_landmarks(s['image'], s['landmarks'],
                                visible=s['visible'])
                 if landmarks else s['image'])
  if out.suffix.lower() == '.png':
    save_rgb(out, tile(tiles, cols=min(num, 4)) if num > 1 else tiles[0])
  else:
    out.mkdir(parents=True, exist_ok=True)
    for i, t in enumerate(tiles):
      save_rgb(out / f'{layout}_{start + i:05d}.png', t)
  return out
