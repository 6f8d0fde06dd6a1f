"""Report figures: CED curves and landmark overlays (PNG)."""

from __future__ import annotations

from pathlib import Path

import cv2
# A Figure of its own, not pyplot: the CED is written without touching the
# importer's matplotlib backend (a notebook's inline plots keep working).
from matplotlib.figure import Figure
import numpy as np

from jaxlm import layouts as layouts_lib
from jaxlm import metrics
from jaxlm.errors import JaxlmError


def plot_ced(curves: dict[str, np.ndarray], path, alpha=0.1, title='CED'):
  """Writes a CED plot of {label: per-sample NMEs} to `path`."""
  fig = Figure(figsize=(5, 4), dpi=100)
  ax = fig.subplots()
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


PREDICTION = (0, 230, 0)  # RGB
GROUND_TRUTH = (255, 60, 60)
FACE_BOX = (255, 210, 0)


def draw_landmarks(image_rgb, points, colour=PREDICTION, gt=None,
                   visible=None, radius=None, *, layout=None, box=None,
                   legend: bool = False, min_size: int = 0,
                   labels=('prediction', 'ground truth')):
  """Returns a copy of image_rgb with points (and optionally gt) drawn.

  Dots and lines are sized to the face (the box, else the points' extent),
  not to the image, so a small face in a large photo stays readable.

  Args:
    image_rgb: (H, W, 3) uint8.
    points: (N, 2) image pixels; gt: (N, 2) or (M, 2) ground truth, or None.
    visible: (N,) bool; invisible points are hollow.
    layout: a layout name or `layouts.Layout` whose contours (jaw, brows,
      eyes, nose, lips) connect the points (and gt, where it has N points);
      None or a point count that does not match: dots only.
    box: (x0, y0, x1, y1) face box, image pixels, drawn as a rectangle.
    legend: label the colours (prediction, ground truth, face box).
    min_size: enlarge the image (and coordinates) so its shorter side is at
      least this many pixels before drawing.
    labels: the legend's names of `points` and `gt`.
  """
  img, scale = enlarge(image_rgb, min_size)
  points = np.asarray(points, np.float64) * scale
  gt = None if gt is None else np.asarray(gt, np.float64) * scale
  box = None if box is None else np.asarray(box, np.float64) * scale
  face = _face_size(points, gt, box, img.shape)
  r = radius or max(1, int(round(face / 90)))
  t = max(1, int(round(face / 250)))
  contours = _contours(layout)
  if box is not None:
    x0, y0, x1, y1 = np.round(box).astype(int)
    cv2.rectangle(img, (x0, y0), (x1, y1), FACE_BOX, t, cv2.LINE_AA)
  for pts, col, vis in ((gt, GROUND_TRUTH, None), (points, colour, visible)):
    if pts is None:
      continue
    if len(pts) == contours[1]:
      for c in contours[0]:
        line = pts[list(c.points)]
        if np.isfinite(line).all():
          cv2.polylines(img, [_fixed(line)], c.closed, col, t, cv2.LINE_AA,
                        shift=_SHIFT)
    for i, (x, y) in enumerate(pts):
      if not np.isfinite([x, y]).all():
        continue
      filled = -1 if vis is None or vis[i] else max(1, t)
      cv2.circle(img, tuple(_fixed([[x, y]])[0]), r << _SHIFT, col, filled,
                 cv2.LINE_AA, shift=_SHIFT)
  if legend:
    items = [(labels[0], colour)]
    if gt is not None:
      items.append((labels[1], GROUND_TRUTH))
    if box is not None:
      items.append(('face box', FACE_BOX))
    draw_legend(img, items)
  return img


def enlarge(image_rgb, min_size: int):
  """(a copy of image_rgb enlarged by a whole factor so its shorter side is
  at least min_size pixels, the factor); coordinates scale by it."""
  img = np.ascontiguousarray(image_rgb)
  side = min(img.shape[:2])
  if not min_size or side >= min_size:
    return img.copy(), 1.0
  scale = float(np.ceil(min_size / side))
  return cv2.resize(img, (int(img.shape[1] * scale),
                          int(img.shape[0] * scale)),
                    interpolation=cv2.INTER_CUBIC), scale


_SHIFT = 4  # sub-pixel bits of cv2's fixed-point drawing


def _fixed(points) -> np.ndarray:
  return np.round(np.asarray(points) * (1 << _SHIFT)).astype(np.int32)


def _face_size(points, gt, box, shape) -> float:
  """The face's longer side in pixels: the box's, else the points'."""
  if box is not None:
    return float(max(box[2] - box[0], box[3] - box[1]))
  pts = np.concatenate([p for p in (points, gt) if p is not None])
  pts = pts[np.isfinite(pts).all(-1)]
  if len(pts) < 2:
    return float(min(shape[:2]))
  return float(max((pts.max(0) - pts.min(0)).max(), 8.0))


def _contours(layout) -> tuple[tuple, int]:
  """(contours, number of points) of a layout name or Layout; ((), -1)
  for None."""
  if layout is None:
    return (), -1
  lay = layouts_lib.get(layout) if isinstance(layout, str) else layout
  return lay.contours, lay.num_points


def draw_legend(img, items):
  """Draws [(label, RGB colour)] as a key in the top-left corner, in place,
  sized to the image."""
  h, w = img.shape[:2]
  scale = max(0.35, min(w, h) / 700)
  thick = max(1, int(round(scale * 1.5)))
  pad = max(3, int(round(8 * scale)))
  sizes = [cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)[0]
           for label, _ in items]
  line = max(s[1] for s in sizes) + pad
  dot = max(2, line // 4)
  width = 3 * pad + 2 * dot + max(s[0] for s in sizes)
  height = pad + line * len(items)
  region = img[:min(h, height), :min(w, width)]
  region[:] = (region * 0.35).astype(img.dtype)  # dark, see-through key
  for k, (label, col) in enumerate(items):
    y = pad + line * k + line // 2
    cv2.circle(img, (pad + dot, y), dot, col, -1, cv2.LINE_AA)
    cv2.putText(img, label, (2 * pad + 2 * dot, y + sizes[k][1] // 2),
                cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), thick,
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
