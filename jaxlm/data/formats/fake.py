"""Small datasets in the original file formats, drawn from synthetic faces.

For tests, benchmarks and smoke runs of the readers, TFDS builders and the
training pipeline without the real datasets. Each writer renders faces with
the synthetic twin of the dataset's layout (syn98 for WFLW, ...) at
`photo_size` pixels with the face filling about half of the photo, and
writes them where the real dataset's files would be, in the real format
(1-based .pts, MATLAB v7.3 COFW files, MERL-RAV's negative coordinates...).
"""

from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np
from etils import epath

from jaxlm.data import synthetic
from jaxlm.data.formats import ibug, merlrav, wflw
from jaxlm.errors import JaxlmError


def _faces(layout: str, n: int, seed: int, photo_size: int,
           occlusion_prob: float = 0.3):
  src = synthetic.SyntheticFaces(layout, size=n, seed=seed,
                                 image_size=photo_size, framing=2.0,
                                 occlusion_prob=occlusion_prob)
  return [src[i] for i in range(n)]


def _write_image(path: epath.Path, image: np.ndarray):
  path.parent.mkdir(parents=True, exist_ok=True)
  ok, data = cv2.imencode(path.suffix, cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
  assert ok, path
  path.write_bytes(data.tobytes())


def _box(points, pad=0.05):
  lo, hi = points.min(0), points.max(0)
  d = (hi - lo) * pad
  return np.concatenate([lo - d, hi + d])


def write_pts(path, points, *, one_based: bool = True):
  """An iBUG .pts file of (N, 2) 0-based points (1-based inside)."""
  p = np.asarray(points, np.float64) + (1.0 if one_based else 0.0)
  lines = ['version: 1', f'n_points:  {len(p)}', '{']
  lines += [f'{x:.3f} {y:.3f}' for x, y in p] + ['}']
  epath.Path(path).write_text('\n'.join(lines) + '\n')


def write_wflw(root, splits: dict[str, int], seed: int = 0,
               photo_size: int = 160):
  """WFLW_images/ + the annotation lists of `splits` ({'train': n, ...})."""
  root = epath.Path(root)
  ann = wflw.annotation_file(root, 'train').parent
  ann.mkdir(parents=True, exist_ok=True)
  for k, (split, n) in enumerate(sorted(splits.items())):
    lines = []
    for i, f in enumerate(_faces('syn98', n, seed + k, photo_size)):
      rel = f'0--Synthetic/{split}_{i:04d}.jpg'
      _write_image(root / 'WFLW_images' / rel, f['image'])
      flags = (np.arange(6) + i) % 2 == 0  # every flag on some face
      vals = list(f['landmarks'].ravel()) + list(_box(f['landmarks']))
      lines.append(' '.join([f'{v:.4f}' for v in vals] +
                            [str(int(v)) for v in flags] + [rel]))
    wflw.annotation_file(root, split).write_text('\n'.join(lines) + '\n')


def write_pts_folders(root, folders: Sequence[str], n: int, seed: int = 0,
                      photo_size: int = 160, layout: str = 'syn68',
                      suffix: str = '.png'):
  """n faces with .pts files in each of root/<folder> (300W layout)."""
  root = epath.Path(root)
  for k, folder in enumerate(folders):
    for i, f in enumerate(_faces(layout, n, seed + 31 * k, photo_size)):
      stem = root / folder / f'image_{i:04d}'
      _write_image(stem.with_suffix(suffix), f['image'])
      write_pts(stem.with_suffix('.pts'), f['landmarks'])


def write_300w(root, n: int = 2, seed: int = 0, photo_size: int = 160,
               private: bool = True, masked: bool = True):
  folders = sorted({f for s in ('train', 'full') for f in ibug.SPLITS_300W[s]})
  write_pts_folders(root, folders, n, seed, photo_size)
  if private:
    write_pts_folders(root, ibug.SPLITS_300W['private'], n, seed + 1,
                      photo_size)
  if masked:
    write_pts_folders(root, [f'masked_300w/{f}'
                             for f in ibug.SPLITS_300W['full']], n, seed + 2,
                      photo_size)


def _write_mat73(path, variables: dict):
  """A MATLAB v7.3 file: HDF5 after a 512-byte header, matrices transposed,
  cell arrays as object references into #refs#."""
  import h5py  # pylint: disable=g-import-not-at-top
  path = epath.Path(path)
  with h5py.File(path, 'w', userblock_size=512) as f:
    refs = f.create_group('#refs#')
    for name, value in variables.items():
      if isinstance(value, list):
        ds = f.create_dataset(name, (1, len(value)),
                              dtype=h5py.ref_dtype)
        for i, item in enumerate(value):
          cell = refs.create_dataset(f'{name}_{i}', data=np.asarray(item).T)
          ds[0, i] = cell.ref
      else:
        f.create_dataset(name, data=np.asarray(value).T)
  with open(path, 'r+b') as fobj:  # MATLAB's text header (local files)
    fobj.write(b'MATLAB 7.3 MAT-file, jaxlm fake'.ljust(116))


def write_cofw(root, splits: dict[str, int], seed: int = 0,
               photo_size: int = 160, cofw68: bool = True):
  """COFW_{split}_color.mat (v7.3) and, for the test split, COFW68_Data."""
  import scipy.io  # pylint: disable=g-import-not-at-top
  root = epath.Path(root)
  root.mkdir(parents=True, exist_ok=True)
  keys = dict(train=('IsTr', 'phisTr', 'bboxesTr'),
              test=('IsT', 'phisT', 'bboxesT'))
  for k, (split, n) in enumerate(sorted(splits.items())):
    faces = _faces('syn29', n, seed + k, photo_size)
    images, phis, boxes = [], [], []
    for i, f in enumerate(faces):
      img = f['image']
      if i % 3 == 2:  # COFW has grey images too
        img = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
      images.append(img)
      p = f['landmarks'] + 1.0
      phis.append(np.concatenate([p[:, 0], p[:, 1],
                                  f['occluded'].astype(np.float64)]))
      x0, y0, x1, y1 = _box(f['landmarks'])
      boxes.append([x0 + 1, y0 + 1, x1 - x0, y1 - y0])
    ik, pk, bk = keys[split]
    _write_mat73(root / f'COFW_{split}_color.mat',
                 {ik: images, pk: np.asarray(phis), bk: np.asarray(boxes)})
    if split == 'test' and cofw68:
      d = root / 'COFW68_Data' / 'test_annotations'
      d.mkdir(parents=True, exist_ok=True)
      boxes68 = []
      for i in range(n):
        # A 68-point shape of the same face: the syn68 twin of the render.
        pts = synthetic.SyntheticFaces('syn68', size=n, seed=seed + k,
                                       image_size=photo_size,
                                       framing=2.0).landmarks(i)
        occ = np.zeros(68)
        occ[::7] = 1
        with (d / f'{i + 1}_points.mat').open('wb') as fobj:
          scipy.io.savemat(fobj, dict(Points=pts + 1.0, Occ=occ[:, None]))
        x0, y0, x1, y1 = _box(pts)
        boxes68.append([x0 + 1, y0 + 1, x1 - x0, y1 - y0])
      with (root / 'COFW68_Data' / 'cofw68_test_bboxes.mat').open('wb') as f:
        scipy.io.savemat(f, dict(bboxes=np.asarray(boxes68)))


def write_merlrav(root, n: int = 1, seed: int = 0, photo_size: int = 160):
  """n faces per pose and split, .pts with MERL-RAV's occlusion coding."""
  root = epath.Path(root) / 'merl_rav_organized'
  for k, pose in enumerate(merlrav.POSES):
    for j, split in enumerate(('train', 'test')):
      d = root / pose / f'{split}set'
      for i, f in enumerate(_faces('syn68', n, seed + 10 * k + j,
                                   photo_size, occlusion_prob=0.8)):
        stem = d / f'{pose}_{split}_{i:03d}'
        _write_image(stem.with_suffix('.jpg'), f['image'])
        raw = f['landmarks'].astype(np.float64) + 1.0
        raw[f['occluded']] *= -1  # externally occluded: negated
        raw[~f['visible']] = -1  # self-occluded: no position
        write_pts(stem.with_suffix('.pts'), raw, one_based=False)


def write_aflw19(root, n: int, seed: int = 0, photo_size: int = 160):
  """AFLWinfo_release.mat (v5) + flickr/ images for n faces."""
  import scipy.io  # pylint: disable=g-import-not-at-top
  root = epath.Path(root)
  faces = _faces('syn19', n, seed, photo_size)
  names, data, boxes, masks = [], [], [], []
  for i, f in enumerate(faces):
    name = f'{i % 3}/image{i:05d}.jpg'
    names.append(name)
    _write_image(root / 'flickr' / name, f['image'])
    p = f['landmarks'] + 1.0
    data.append(np.concatenate([p[:, 0], p[:, 1]]))
    x0, y0, x1, y1 = _box(f['landmarks'], 0.15) + 1.0
    boxes.append([x0, x1, y0, y1])
    masks.append(~f['occluded'] & f['visible'])
  names_cell = np.empty((n, 1), object)
  for i, s in enumerate(names):
    names_cell[i, 0] = s
  ra = np.random.default_rng(seed).permutation(n)[None] + 1
  with (root / 'AFLWinfo_release.mat').open('wb') as fobj:
    scipy.io.savemat(fobj, dict(data=np.asarray(data), bbox=np.asarray(boxes),
                                mask_new=np.asarray(masks, np.float64),
                                nameList=names_cell, ra=ra.astype(np.float64)))


def write_mafl(root, splits: dict[str, int], seed: int = 0):
  """img_align_celeba/, Anno/list_landmarks_align_celeba.txt, MAFL lists."""
  root = epath.Path(root)
  lines, k = [], 0
  (root / 'MAFL').mkdir(parents=True, exist_ok=True)
  (root / 'Anno').mkdir(parents=True, exist_ok=True)
  for j, (split, n) in enumerate(sorted(splits.items())):
    src = synthetic.SyntheticFaces('syn98', size=n, seed=seed + j,
                                   image_size=218, framing=1.3)
    listed = []
    for i in range(n):
      f = src[i]
      k += 1
      name = f'{k:06d}.jpg'
      _write_image(root / 'img_align_celeba' / name,
                   np.ascontiguousarray(f['image'][:, 20:198]))
      p = f['landmarks'][[96, 97, 54, 76, 82]] - [20, 0]
      lines.append(name + ' ' + ' '.join(f'{v:.0f}' for v in p.ravel()))
      listed.append(name)
    fname = 'training.txt' if split == 'train' else 'testing.txt'
    (root / 'MAFL' / fname).write_text('\n'.join(listed) + '\n')
  header = ('lefteye_x lefteye_y righteye_x righteye_y nose_x nose_y '
            'leftmouth_x leftmouth_y rightmouth_x rightmouth_y')
  (root / 'Anno' / 'list_landmarks_align_celeba.txt').write_text(
      '\n'.join([str(k), header] + lines) + '\n')


# `jaxlm fake-data NAME`: n faces per split / folder in NAME's original format.
WRITERS = dict(
    wflw=lambda out, n: write_wflw(out, dict(train=n, test=n)),
    w300=lambda out, n: write_300w(out, n=n),
    cofw=lambda out, n: write_cofw(out, dict(train=n, test=n)),
    merl_rav=lambda out, n: write_merlrav(out, n=n),
    aflw19=lambda out, n: write_aflw19(out, n=n),
    mafl=lambda out, n: write_mafl(out, dict(train=n, test=n)))


def write_dataset(name: str, out, n: int = 4):
  """A small fake dataset `name` in its original file format under `out`."""
  if name not in WRITERS:
    raise JaxlmError(f'unknown dataset {name!r}; known: {", ".join(WRITERS)}')
  WRITERS[name](out, n)
