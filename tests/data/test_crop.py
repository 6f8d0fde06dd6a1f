import numpy as np
import pytest

from jaxlm.data import crop
from jaxlm.errors import JaxlmError


def test_square_crop_maps_box_into_centre():
  m = crop.square_crop_affine((100, 50, 200, 250), out_size=256, factor=1.2)
  c = crop.apply_affine(m, [[150, 150]])[0]
  np.testing.assert_allclose(c, [128, 128])
  # The longer side (200 px) spans 256 / 1.2 crop pixels.
  top, bottom = crop.apply_affine(m, [[150, 50], [150, 250]])
  assert bottom[1] - top[1] == pytest.approx(256 / 1.2)
  back = crop.apply_affine(crop.invert_affine(m), crop.apply_affine(
      m, [[3.0, 4.0]]))
  np.testing.assert_allclose(back, [[3.0, 4.0]], atol=1e-9)


def test_warp_keeps_marked_pixel_on_its_landmark():
  img = np.zeros((300, 400, 3), np.uint8)
  img[120, 220] = 255
  m = crop.square_crop_affine((180, 80, 300, 220), out_size=128)
  out = crop.warp(img, m, 128)
  peak = np.unravel_index(out[..., 0].argmax(), out.shape[:2])
  want = crop.apply_affine(m, [[220, 120]])[0]
  assert abs(peak[1] - want[0]) <= 1 and abs(peak[0] - want[1]) <= 1


def test_box_checks():
  with pytest.raises(JaxlmError, match='outside'):
    crop.check_box((500, 10, 600, 90), 400, 300)
  with pytest.raises(JaxlmError, match='x0 < x1'):
    crop.check_box((50, 10, 40, 90), 400, 300)
  crop.check_box((-10, -10, 40, 90), 400, 300)  # partly outside is fine


def test_real_wflw_face_crop_round_trip(real_samples):
  """A real WFLW annotation survives image -> crop -> image."""
  line = (real_samples / 'wflw' / 'WFLW_annotations' /
          'list_98pt_rect_attr_train_test' / 'list_98pt_rect_attr_test.txt'
          ).read_text().splitlines()[0].split()
  pts = np.asarray(line[:196], float).reshape(98, 2)
  box = np.r_[pts.min(0), pts.max(0)]
  m = crop.square_crop_affine(box, 256, 1.2)
  c = crop.apply_affine(m, pts)
  assert c.min() > 256 * 0.05 and c.max() < 256 * 0.95
  np.testing.assert_allclose(crop.apply_affine(crop.invert_affine(m), c), pts,
                             atol=1e-6)
