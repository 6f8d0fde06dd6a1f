"""COFW (29 points) colour MATLAB release, and COFW68.

`COFW_train_color.mat` (1,345 faces: `IsTr`, `phisTr`, `bboxesTr`) and
`COFW_test_color.mat` (507 faces: `IsT`, `phisT`, `bboxesT`) are MATLAB v7.3
(HDF5) files: `Is*` is a cell array of images (grey or RGB), `phis*` an
(n, 87) matrix of 29 x, 29 y and 29 occlusion flags (1 = occluded), `bboxes*`
(n, 4) boxes x y w h; coordinates are 1-based (MATLAB). Older v5 `.mat`
copies of the same files are read too.

COFW68 (Ghiasi & Fowlkes) re-annotates the 507 test faces with 68 points:
`COFW68_Data/test_annotations/<i>_points.mat` (`Points` (68, 2), `Occ`
(68,)) and `COFW68_Data/cofw68_test_bboxes.mat` (`bboxes` (507, 4) x y w h),
images from `COFW_test_color.mat`.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np
from etils import epath

from jaxlm.data.formats import FaceRecord, FormatError, check_record
from jaxlm.data.formats import parse_each

NUM_POINTS = 29
_KEYS = dict(train=('IsTr', 'phisTr', 'bboxesTr'),
             test=('IsT', 'phisT', 'bboxesT'))


def mat_file(root, split: str) -> epath.Path:
  return epath.Path(root) / f'COFW_{split}_color.mat'


def _is_hdf5(path: epath.Path) -> bool:
  with path.open('rb') as f:
    f.seek(512)
    return f.read(8) == b'\x89HDF\r\n\x1a\n'


def load_mat(path, keys) -> dict[str, object]:
  """The named variables of a .mat file (v5 or v7.3), MATLAB orientation.

  Cell arrays come back as lists of arrays; matrices as in MATLAB (rows
  first), whatever the file version.
  """
  path = epath.Path(path)
  if not path.exists():
    raise FormatError(f'{path}: file not found')
  try:
    if _is_hdf5(path):
      return _load_hdf5(path, keys)
    import scipy.io  # pylint: disable=g-import-not-at-top
    with path.open('rb') as f:
      d = scipy.io.loadmat(f, variable_names=list(keys))
  except FormatError:
    raise
  except Exception as e:  # h5py/scipy raise many types on corrupt files
    raise FormatError(f'{path}: unreadable .mat file ({e})') from None
  missing = [k for k in keys if k not in d]
  if missing:
    raise FormatError(f'{path}: missing variable(s) {", ".join(missing)}')
  out = {}
  for k in keys:
    v = d[k]
    out[k] = [np.asarray(c) for c in v.ravel()] if v.dtype == object else v
  return out


def _load_hdf5(path: epath.Path, keys) -> dict[str, object]:
  import h5py  # pylint: disable=g-import-not-at-top
  out = {}
  with path.open('rb') as fobj, h5py.File(fobj, 'r') as f:
    missing = [k for k in keys if k not in f]
    if missing:
      raise FormatError(f'{path}: missing variable(s) {", ".join(missing)}')
    for k in keys:
      ds = f[k]
      if ds.dtype == object:  # cell array of references
        out[k] = [np.asarray(f[r]).T for r in np.asarray(ds).T.ravel()]
      else:  # HDF5 stores MATLAB matrices transposed
        out[k] = np.asarray(ds).T
  return out


def _from_matlab_box(b) -> np.ndarray:
  x, y, w, h = [float(v) for v in b]
  return np.array([x - 1, y - 1, x - 1 + w, y - 1 + h])


def read_cofw(root, split: str, *, on_error=None) -> Iterator[FaceRecord]:
  """Faces of COFW `split` ('train' | 'test'), images embedded."""
  if split not in _KEYS:
    raise FormatError(f'unknown COFW split {split!r}; known: train, test')
  path = mat_file(root, split)
  ik, pk, bk = _KEYS[split]
  d = load_mat(path, (ik, pk, bk))
  images, phis, boxes = d[ik], np.asarray(d[pk], np.float64), d[bk]
  if phis.ndim != 2 or phis.shape[1] != 3 * NUM_POINTS:
    raise FormatError(f'{path}: {pk} has shape {phis.shape}, expected '
                      f'(n, {3 * NUM_POINTS})')
  if not len(images) == len(phis) == len(boxes):
    raise FormatError(f'{path}: {len(images)} images, {len(phis)} shapes, '
                      f'{len(boxes)} boxes')

  def parse(i):
    image, phi, box = images[i], phis[i], boxes[i]
    where = f'{path}#{i}'
    occluded = phi[2 * NUM_POINTS:]
    if not np.isin(occluded, (0, 1)).all():
      raise FormatError(f'{where}: occlusion flags are not 0/1')
    return check_record(FaceRecord(
        image_path=where,
        landmarks=np.stack([phi[:NUM_POINTS], phi[NUM_POINTS:2 * NUM_POINTS]],
                           axis=1) - 1.0,
        visible=occluded == 0, box=_from_matlab_box(box),
        layout='cofw29', dataset='cofw', where=where,
        image=np.asarray(image, np.uint8)), NUM_POINTS)

  return parse_each(range(len(phis)), parse, on_error)


def read_cofw68(root, *, on_error=None) -> Iterator[FaceRecord]:
  """The 507 COFW test faces with their 68-point (300W-scheme) labels."""
  root = epath.Path(root)
  base = root / 'COFW68_Data'
  boxes = np.asarray(load_mat(base / 'cofw68_test_bboxes.mat',
                              ('bboxes',))['bboxes'], np.float64)
  images = load_mat(mat_file(root, 'test'), ('IsT',))['IsT']
  if len(boxes) != len(images):
    raise FormatError(f'{base}/cofw68_test_bboxes.mat: {len(boxes)} boxes '
                      f'for {len(images)} COFW test images')

  def parse(i):
    image = images[i]
    f = base / 'test_annotations' / f'{i + 1}_points.mat'
    d = load_mat(f, ('Points', 'Occ'))
    points = np.asarray(d['Points'], np.float64)
    occ = np.asarray(d['Occ']).ravel()
    if points.shape != (68, 2) or occ.shape != (68,):
      raise FormatError(f'{f}: Points {points.shape} / Occ {occ.shape}, '
                        f'expected (68, 2) / (68,)')
    return check_record(FaceRecord(
        image_path=f'{mat_file(root, "test")}#{i}', landmarks=points - 1.0,
        visible=occ == 0, box=_from_matlab_box(boxes[i]), layout='300w68',
        dataset='cofw68', where=str(f), image=np.asarray(image, np.uint8)),
        68)

  return parse_each(range(len(images)), parse, on_error)
