"""The grain pipeline on TFDS data built from fake original-format files."""

import json

import numpy as np
import pytest

from jaxlm import cli
from jaxlm.data import crop as crop_lib
from jaxlm.data import pipeline, sources
from jaxlm.data.formats import cofw, fake, merlrav, wflw
from jaxlm.data.tfds import cofw as cofw_builder
from jaxlm.data.tfds import merl_rav as merl_rav_builder
from jaxlm.data.tfds import wflw as wflw_builder
from jaxlm.errors import JaxlmError

import tensorflow_datasets as tfds


def _build(cls, manual_dir, data_dir, config=None):
  b = cls(config=config, data_dir=str(data_dir))
  b.download_and_prepare(download_config=tfds.download.DownloadConfig(
      manual_dir=str(manual_dir),
      compute_stats=tfds.download.ComputeStatsMode.SKIP))
  return b


@pytest.fixture(scope='module')
def built(tmp_path_factory):
  root = tmp_path_factory.mktemp('pipe')
  fake.write_wflw(root / 'raw_wflw', dict(train=6, test=3))
  fake.write_cofw(root / 'raw_cofw', dict(train=4, test=2), cofw68=False)
  fake.write_merlrav(root / 'raw_merlrav', n=1)
  data = root / 'tfds'
  _build(wflw_builder.Builder, root / 'raw_wflw', data)
  _build(cofw_builder.Builder, root / 'raw_cofw', data, 'cofw29')
  _build(merl_rav_builder.Builder, root / 'raw_merlrav', data)
  return root, str(data)


def _faces(data, name='wflw', layout='wflw98', split='test', size=256):
  return sources.TfdsFaces(name, name, split, layout, data, size)


def test_eval_crop_maps_back_to_the_original_annotation(built):
  root, data = built
  recs = list(wflw.read_wflw(wflw.annotation_file(root / 'raw_wflw', 'test'),
                             root / 'raw_wflw' / 'WFLW_images'))
  ev = sources.EvalFaces(_faces(data))
  assert len(ev) == len(recs) == 3
  for i, rec in enumerate(recs):
    s = ev[i]
    back = crop_lib.apply_affine(s['to_image'], s['landmarks'])
    np.testing.assert_allclose(back, rec.landmarks, atol=2e-3)
    np.testing.assert_allclose(s['box'], rec.box, atol=1e-3)
    # The crop is the photo seen through the same affine (JPEG aside).
    direct = crop_lib.warp(rec.load_image(),
                           crop_lib.invert_affine(s['to_image']), 256)
    inside = direct.sum(-1) > 0
    diff = np.abs(direct.astype(int) - s['image'].astype(int))[inside]
    assert diff.mean() < 6, diff.mean()
    # The reference square: 1.2 x the longer side of the landmarks' box.
    p = s['landmarks']
    side = (p.max(0) - p.min(0)).max()
    assert side == pytest.approx(256 / 1.2, rel=1e-4)
    np.testing.assert_allclose((p.max(0) + p.min(0)) / 2, [128, 128],
                               atol=1e-3)


def test_cofw_uses_its_1_32_factor(built):
  _, data = built
  faces = sources.TfdsFaces('c', 'cofw/cofw29', 'test', 'cofw29', data, 256)
  assert faces.crop_factor == pytest.approx(1.32)
  p = sources.EvalFaces(faces)[0]['landmarks']
  assert (p.max(0) - p.min(0)).max() == pytest.approx(256 / 1.32, rel=1e-4)


def _specs(data, weights=(1.0, 1.0)):
  return [
      sources.DatasetSpec('cofw', 'cofw29', sources.TfdsFaces(
          'cofw', 'cofw/cofw29', 'train', 'cofw29', data, 128), weights[0]),
      sources.DatasetSpec('wflw', 'wflw98', _faces(data, split='train',
                                                    size=128), weights[1])]


def test_training_batches(built):
  _, data = built
  specs = _specs(data)
  offsets = dict(cofw=0, wflw=29)
  kw = dict(num_anchors=24, image_size=128, batch_size=8, seed=3)
  it = iter(pipeline.train_dataset(specs, offsets, **kw))
  b = next(it)
  assert b['image'].shape == (8, 128, 128, 3) and b['image'].dtype == np.uint8
  assert b['point_index'].shape == b['weight'].shape == (8, 24)
  assert b['target'].shape == (8, 24, 2)
  assert np.isfinite(b['target']).all()
  assert (np.abs(b['target'] - 0.5) < 1.0).all()  # near the crop
  from_cofw = (b['point_index'] < 29).all(1)
  from_wflw = (b['point_index'] >= 29).all(1)
  assert (from_cofw | from_wflw).all()  # one dataset per example
  # Deterministic per seed, and the iterator state resumes exactly.
  it2 = iter(pipeline.train_dataset(specs, offsets, **kw))
  np.testing.assert_array_equal(next(it2)['image'], b['image'])
  state = it.get_state()
  after = next(it)
  it3 = iter(pipeline.train_dataset(specs, offsets, **kw))
  it3.set_state(state)
  np.testing.assert_array_equal(next(it3)['target'], after['target'])
  other = next(iter(pipeline.train_dataset(specs, offsets,
                                           **{**kw, 'seed': 4})))
  assert not np.array_equal(other['target'], b['target'])


def test_worker_processes_give_the_same_batches(built):
  _, data = built
  kw = dict(num_anchors=24, image_size=64, batch_size=4, seed=1)
  specs = _specs(data)
  a = iter(pipeline.train_dataset(specs, dict(cofw=0, wflw=29), **kw))
  b = iter(pipeline.train_dataset(specs, dict(cofw=0, wflw=29),
                                  worker_count=1, **kw))
  for _ in range(2):
    np.testing.assert_array_equal(next(a)['target'], next(b)['target'])


def test_process_shards_are_disjoint(built):
  _, data = built
  from jaxlm.data import augment
  # No augmentation: a face's targets (sorted by point) identify it.
  kw = dict(num_anchors=98, image_size=64, batch_size=3, seed=0,
            augment=augment.AugmentConfig.off())
  spec = [sources.DatasetSpec('wflw', 'wflw98',
                               _faces(data, split='train', size=64))]
  faces = []
  for p in range(2):
    it = iter(pipeline.train_dataset(spec, dict(wflw=0), process_index=p,
                                     process_count=2, **kw))
    # 6 faces / 2 processes: one epoch of a process is 3 faces.
    b = next(it)
    order = np.argsort(b['point_index'], axis=1)
    t = np.take_along_axis(b['target'], order[..., None], axis=1)
    faces.append({tuple(np.round(x.ravel(), 4)) for x in t})
  assert len(faces[0]) == len(faces[1]) == 3
  assert not faces[0] & faces[1]


def test_mixing_weights(built):
  _, data = built
  it = iter(pipeline.train_dataset(_specs(data, (1.0, 3.0)),
                                   dict(cofw=0, wflw=29), num_anchors=24,
                                   image_size=64, batch_size=40, seed=0))
  b = next(it)
  share = np.mean((b['point_index'] >= 29).all(1))
  assert share == pytest.approx(0.75, abs=0.05)


def test_self_occluded_points_get_weight_zero_not_nan(built):
  _, data = built
  spec = sources.DatasetSpec('m', 'merlrav68', sources.TfdsFaces(
      'm', 'merl_rav', 'train', 'merlrav68', data, 64))
  raw = [spec.source[i]['landmarks'] for i in range(len(spec.source))]
  assert any(np.isnan(r).any() for r in raw)
  b = next(iter(pipeline.train_dataset(
      [spec], dict(m=0), num_anchors=68, image_size=64, batch_size=10,
      seed=0)))
  assert np.isfinite(b['target']).all()
  assert (b['weight'] == 0).any()
  np.testing.assert_array_equal(b['target'][b['weight'] == 0], 0.0)
  # The mean shape skips missing points instead of turning NaN.
  assert np.isfinite(pipeline.mean_shape(spec.source, 10, 64)).all()


def test_config_errors_name_the_problem(built):
  _, data = built
  with pytest.raises(JaxlmError, match='not built under data_dir'):
    sources.TfdsFaces('x', 'w300', 'train', '300w68', data, 256)
  with pytest.raises(JaxlmError, match="no such split; built splits: train"):
    _faces(data, split='val')
  with pytest.raises(JaxlmError, match="built with layout 'wflw98'"):
    _faces(data, layout='300w68')
  with pytest.raises(JaxlmError, match='known builders'):
    sources.TfdsFaces('x', 'nope', 'train', 'wflw98', data, 256)


def test_build_command_stops_on_bad_input_and_writes_nothing(built, tmp_path,
                                                             capsys):
  root, _ = built
  import shutil
  raw = tmp_path / 'raw'
  shutil.copytree(root / 'raw_wflw', raw)
  (raw / 'WFLW_images' / '0--Synthetic' / 'train_0002.jpg').write_bytes(b'x')
  out = tmp_path / 'tfds'
  args = ['build', 'wflw', '--manual_dir', str(raw), '--data_dir', str(out),
          '--no-progress']
  assert cli.main(args) == 2
  err = capsys.readouterr().err
  assert 'train_0002.jpg: corrupt or unsupported image' in err
  assert '--skip_bad' in err
  assert not list(out.rglob('dataset_info.json'))
  assert cli.main(args + ['--skip_bad']) == 0
  report = json.loads(next(out.rglob('build_report.json')).read_text())
  assert report['splits']['train'] == 5
  assert len(report['skipped']['train']) == 1
  assert 'train_0002.jpg' in report['skipped']['train'][0]
  assert cli.main(['build', 'wflw/nope', '--manual_dir', str(raw),
                   '--data_dir', str(out)]) == 2
  assert "no config 'nope'" in capsys.readouterr().err


def test_box_outside_the_image_is_bad_input(tmp_path):
  raw = tmp_path / 'raw'
  fake.write_cofw(raw, dict(test=2, train=1), cofw68=False)
  import h5py
  with h5py.File(cofw.mat_file(raw, 'test'), 'r+') as f:
    phis = f['phisT'][()]
    phis[:58, 1] += 5000  # face 1: every point far off the image
    f['phisT'][...] = phis
  b = cofw_builder.Builder(config='cofw29', data_dir=str(tmp_path / 'out'))
  with pytest.raises(Exception, match=r'COFW_test_color\.mat#1: (face box|'
                     r'landmark at .* outside)'):
    b.download_and_prepare(download_config=tfds.download.DownloadConfig(
        manual_dir=str(raw),
        compute_stats=tfds.download.ComputeStatsMode.SKIP))
  assert merlrav.SUBSETS  # (keeps the import honest)
