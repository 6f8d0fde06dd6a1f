"""`jaxlm export`: a run's model as a serving artifact, weights and prompts
baked in.

The exported function takes a batch of face crops and returns landmarks:

  images (B, S, S, 3) uint8 RGB, S the run's input size, each crop made by
  the official rule (a square of 1.2x the face box's longer side, centred
  on the box; `jaxlm.data.crop.square_crop_affine`)
  -> landmarks (B, N, 2) in [0, 1] crop units (x, y), and for families
     with one, uncertainty (B, N, 2): the standard deviation, same units.

Formats:
  stablehlo   jax.export's serialized StableHLO (OUT/model.stablehlo), for
              CPU and, where this jaxlib can lower for them, CUDA and TPU;
              `load` deserialises and calls it. B may be symbolic
              (batch=0): any batch size at call time.
  onnx        OUT/model.onnx through jax2onnx (opset 23), input `images`,
              outputs `landmarks`[, `uncertainty`]; checked against the JAX
              function with onnxruntime when it is installed. Needs
              `pip install 'jaxlm[export]'` (jax2onnx, onnxruntime).
  savedmodel  a TensorFlow SavedModel (OUT/savedmodel/) through jax2tf,
              signature `serving_default(images) -> {landmarks[,
              uncertainty]}`; needs tensorflow (`pip install
              tensorflow-cpu`). Run once by TensorFlow before it counts as
              written.
  tflite      OUT/model.tflite (TFLite builtin ops only, so the plain
              LiteRT runtime runs it), converted from that SavedModel;
              fixed batch; checked against the JAX function with
              TensorFlow's TFLite interpreter.
SavedModel and TFLite carry the model as StableHLO inside TensorFlow's
XlaCallModule op. jax.export writes StableHLO for consumers at most four
weeks older than this JAX, which TensorFlow releases lag behind (TF 2.21
cannot read JAX 0.10's `vhlo.composite_v2`); for these two formats the
StableHLO is written for StableHLO's 12-week compatibility window instead
(`_tensorflow_stablehlo`). A TensorFlow too old even for that fails the
run-check with one error naming the op.
With `detector` (BlazeFace, `face_detector`), the artifact takes whole
images of one size instead, and finds, crops and predicts every face in the
same call (`detect_and_predict`):

  images (B, H, W, 3) uint8 RGB
  -> boxes (B, K, 4) x0, y0, x1, y1, scores (B, K) (0: an empty slot),
     landmarks (B, K, N, 2) (NaN in an empty slot) and, for families with
     one, uncertainty (B, K, N, 2), all in image pixels.

OUT/export.json records the format, family, checkpoint step, layout, number
of points, input size, batch and the crop rule.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import tempfile
import threading
import os
import re
import shutil
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from jaxlm.errors import JaxlmError
from jaxlm import inference
from jaxlm.inference import Predictor, make_predict

log = logging.getLogger('jaxlm')

FORMATS = ('stablehlo', 'onnx', 'savedmodel', 'tflite')
ONNX_FILE = 'model.onnx'
TFLITE_FILE = 'model.tflite'
STABLEHLO_FILE = 'model.stablehlo'
META_FILE = 'export.json'


def serving_fn(predictor: Predictor, prompts):
  """images (B, S, S, 3) uint8 -> {'landmarks'[, 'uncertainty']}, crop
  units, the run's variables and `prompts` as constants."""
  predict = make_predict(predictor.model, predictor.family)
  variables = jax.tree_util.tree_map(np.asarray,
                                     jax.device_get(predictor.variables))
  prompts = np.asarray(prompts, np.float32)

  def serve(images):
    pts, std = predict(variables, images, prompts)
    out = {'landmarks': pts.astype(jnp.float32)}
    if std is not None:
      out['uncertainty'] = std.astype(jnp.float32)
    return out

  return serve


def detector_serving_fn(predictor: Predictor, prompts, detector: str,
                        max_faces: int):
  """images (B, H, W, 3) uint8 -> {'boxes', 'scores', 'landmarks'[,
  'uncertainty']}, image pixels, BlazeFace `detector` ('full', 'short',
  'back') and the run's variables and `prompts` as constants."""
  from jaxlm.detect_and_predict import make_detect_and_predict  # pylint: disable=g-import-not-at-top
  from jaxlm.face_detector import BlazeFaceDetector  # pylint: disable=g-import-not-at-top
  fn = make_detect_and_predict(
      make_predict(predictor.model, predictor.family, with_description=True),
      BlazeFaceDetector(detector,
                        max_faces=inference.BLAZEFACE_SLOTS).detect_fn(),
      predictor.size, max_faces)
  variables = jax.tree_util.tree_map(np.asarray,
                                     jax.device_get(predictor.variables))
  prompts = np.asarray(prompts, np.float32)

  def serve(images):
    out = fn(variables, images, prompts)
    keys = ('boxes', 'scores', 'landmarks', 'uncertainty')
    return {k: out[k].astype(jnp.float32) for k in keys if k in out}

  return serve


def _platforms() -> tuple[str, ...]:
  """Platforms to lower for: this backend's, plus CUDA and TPU where the
  lowering works without them."""
  return tuple(dict.fromkeys([jax.default_backend(), 'cpu', 'cuda', 'tpu']))


def _export_stablehlo(fn, spec, out: Path, example) -> list[str]:
  del example  # jax.export's own lowering: nothing to compare
  from jax import export as jax_export  # pylint: disable=g-import-not-at-top
  try:
    exp = jax_export.export(jax.jit(fn), platforms=_platforms())(spec)
  except Exception:  # pylint: disable=broad-except
    # some lowerings exist only for the platform at hand
    exp = jax_export.export(jax.jit(fn))(spec)
  (out / STABLEHLO_FILE).write_bytes(exp.serialize())
  return list(exp.platforms)


def _export_onnx(fn, spec, out: Path, example) -> list[str]:
  try:
    import jax2onnx  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise JaxlmError(f'--format onnx needs jax2onnx ({e}); pip install '
                     f'"jaxlm[export]"') from None
  probe = jax.eval_shape(fn, jax.ShapeDtypeStruct(
      (1,) + tuple(spec.shape[1:]), spec.dtype))
  names = list(probe)
  model = jax2onnx.to_onnx(lambda images: tuple(fn(images)[k] for k in names),
                           [spec], input_names=['images'], output_names=names,
                           return_mode='proto')
  (out / ONNX_FILE).write_bytes(model.SerializeToString())
  try:
    import onnxruntime  # pylint: disable=g-import-not-at-top
  except ImportError:
    log.warning('onnxruntime is not installed: %s was not checked against '
                'the JAX model', out / ONNX_FILE)
    return ['onnx']
  # the artifact must predict what the model predicts
  session = onnxruntime.InferenceSession(str(out / ONNX_FILE))
  got = session.run(names, {'images': example})
  _check_close('onnx', dict(zip(names, got)),
               jax.device_get(jax.jit(fn)(example)))
  return ['onnx']


_WEEK_12 = contextvars.ContextVar('jaxlm_stablehlo_week_12', default=False)
_SWITCH_LOCK = threading.Lock()
_switch = []  # [True] once installed, [False] when JAX's internals differ


def _install_week_12_switch() -> bool:
  """Makes the function jax.export's serialiser asks for its StableHLO
  target answer with the 12-week compatibility version while `_WEEK_12` is
  set in the calling context (thread), and as before otherwise. JAX has no
  public switch for the target version; installed once per process."""
  with _SWITCH_LOCK:
    if not _switch:
      try:
        from jax._src.export import _export  # pylint: disable=g-import-not-at-top
        hlo = _export.hlo
        ask = hlo.get_version_from_compatibility_requirement
        week12 = hlo.StablehloCompatibilityRequirement.WEEK_12
      except (ImportError, AttributeError):
        _switch.append(False)
      else:
        hlo.get_version_from_compatibility_requirement = (
            lambda req: ask(week12 if _WEEK_12.get() else req))
        _switch.append(True)
    return _switch[0]


@contextlib.contextmanager
def _tensorflow_stablehlo():
  """Within the block (this thread only), jax.export serialises StableHLO
  for StableHLO's 12-week compatibility window rather than its 4-week
  default, which TensorFlow releases cannot read yet."""
  if not _install_week_12_switch():
    log.warning('this JAX has no StableHLO target switch jaxlm knows: the '
                'artifact uses its default version, which TensorFlow may '
                'not read (the run-check will say)')
  token = _WEEK_12.set(True)
  try:
    yield
  finally:
    _WEEK_12.reset(token)


def _import_tensorflow(fmt: str):
  try:
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    from jax.experimental import jax2tf  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise JaxlmError(f'--format {fmt} needs tensorflow ({e}); pip install '
                     f'tensorflow-cpu') from None
  return tf, jax2tf


def _check_close(fmt: str, got: dict, want: dict):
  """The artifact must predict what the JAX model predicts (<= 1e-3 crop
  units or image pixels), NaN (empty face slots) where it does."""
  err = 0.0
  for k, w in want.items():
    g, w = np.asarray(got[k], np.float64), np.asarray(w, np.float64)
    if g.shape != w.shape or (np.isnan(g) != np.isnan(w)).any():
      raise JaxlmError(f'--format {fmt}: the artifact\'s {k} differ from '
                       f'the JAX model\'s in shape or in where they are NaN')
    if np.isfinite(w).any():
      err = max(err, float(np.nanmax(np.abs(g - w))))
  if not err <= 1e-3:
    raise JaxlmError(f'--format {fmt}: the artifact differs from the JAX '
                     f'model by {err:.3g} (more than 1e-3)')
  log.info('%s matches the JAX model to %.2g', fmt, err)


def _example(spec, whole_images: bool):
  """An input to check an artifact with: random crops, or for a detector
  artifact (whole images) a synthetic face filling half of each image,
  on noise, so that the check runs the landmark model too."""
  batch = spec.shape[0] if isinstance(spec.shape[0], int) else 2
  h, w = spec.shape[1:3]
  rng = np.random.default_rng(0)
  x = rng.integers(0, 256, (batch, h, w, 3), np.uint8)
  if not whole_images:
    return x
  import cv2  # pylint: disable=g-import-not-at-top
  from jaxlm.data.synthetic import SyntheticFaces  # pylint: disable=g-import-not-at-top
  side = min(h, w) // 2
  faces = SyntheticFaces('syn98', batch, seed=0, image_size=256)
  for i in range(batch):
    face = cv2.resize(faces[i]['image'], (side, side),
                      interpolation=cv2.INTER_AREA)
    y, x0 = (h - side) // 2, (w - side) // 2
    x[i, y:y + side, x0:x0 + side] = face
  return x


def _write_savedmodel(fn, spec, folder: Path, fmt: str, example):
  """jax2tf's SavedModel of `fn` in `folder`, run once by TensorFlow and
  compared with the JAX function; returns TensorFlow."""
  tf, jax2tf = _import_tensorflow(fmt)
  batch = None if not isinstance(spec.shape[0], int) else spec.shape[0]
  poly = None if batch is not None else ['(b, ...)']
  module = tf.Module()
  with _tensorflow_stablehlo():
    module.serve = tf.function(
        jax2tf.convert(fn, polymorphic_shapes=poly,
                       native_serialization_platforms=('cpu', 'cuda')),
        input_signature=[tf.TensorSpec((batch,) + spec.shape[1:], tf.uint8,
                                       name='images')], autograph=False)
    tf.saved_model.save(module, str(folder),
                        signatures={'serving_default': module.serve})
  # TensorFlow runs the StableHLO inside (XlaCallModule) with its own
  # StableHLO version: check that it can, once, before calling it written.
  served = tf.saved_model.load(str(folder))
  try:
    got = served.signatures['serving_default'](images=tf.constant(example))
  except Exception as e:  # pylint: disable=broad-except
    text = str(e)
    op = re.search(r'current operation: %\S+ = "([\w.]+)"', text)
    why = (f'this TensorFlow ({tf.__version__}) cannot run op '
           f'{op.group(1)!r} of this JAX ({jax.__version__})' if op else
           text.strip().splitlines()[-1][:300])
    raise JaxlmError(f'--format {fmt}: {why}; use --format stablehlo, '
                     f'or a TensorFlow release as new as this JAX') from None
  _check_close(fmt, {k: v.numpy() for k, v in got.items()},
               jax.device_get(jax.jit(fn)(example)))
  return tf


def _export_savedmodel(fn, spec, out: Path, example) -> list[str]:
  _write_savedmodel(fn, spec, out / 'savedmodel', 'savedmodel', example)
  return ['cpu', 'cuda']


def _export_tflite(fn, spec, out: Path, example) -> list[str]:
  with tempfile.TemporaryDirectory(dir=out) as tmp:
    tf = _write_savedmodel(fn, spec, Path(tmp) / 'savedmodel', 'tflite',
                           example)
    converter = tf.lite.TFLiteConverter.from_saved_model(
        str(Path(tmp) / 'savedmodel'))
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    (out / TFLITE_FILE).write_bytes(converter.convert())
  # the signature runner keeps the SavedModel's output names
  runner = tf.lite.Interpreter(
      model_path=str(out / TFLITE_FILE)).get_signature_runner()
  got = runner(images=example)
  want = jax.device_get(jax.jit(fn)(example))
  _check_close('tflite', got, want)
  return ['tflite']


def export(checkpoint, out, *, fmt: str = 'stablehlo', batch: int = 1,
           layout=None, detector: str | None = None, image_size=None,
           max_faces: int = 8) -> dict:
  """Writes the serving artifact of `checkpoint` to folder `out` (new or
  empty); returns its export.json record. batch 0: any batch size.
  detector 'blazeface[-short|-back]': whole (B, H, W, 3) images in,
  image_size (H, W), `max_faces` face slots per image."""
  if fmt not in FORMATS:
    raise JaxlmError(f'--format {fmt!r}: expected one of '
                     f'{", ".join(FORMATS)}')
  if batch < 0:
    raise JaxlmError(f'--batch {batch}: must be >= 0 (0: any batch size)')
  if fmt == 'tflite' and not batch:
    raise JaxlmError('--format tflite needs a fixed --batch (>= 1)')
  if detector is not None:
    model = inference.blazeface_model(detector)
    if (image_size is None or len(image_size) != 2 or
        min(image_size) < 1):
      raise JaxlmError('--detector needs --image-size HxW, the size of the '
                       'images the artifact takes (e.g. 480x640)')
    if not 1 <= max_faces <= inference.BLAZEFACE_SLOTS:
      raise JaxlmError(f'--max-faces {max_faces}: must be in 1 .. '
                       f'{inference.BLAZEFACE_SLOTS}')
  elif image_size is not None:
    raise JaxlmError('--image-size is for --detector artifacts (whole '
                     'images in); without --detector the input is face '
                     'crops of the run\'s size')
  out = Path(os.path.expanduser(str(out)))
  if out.exists() and any(out.iterdir()):
    raise JaxlmError(f'{out} exists and is not empty; export to a new folder')
  predictor = Predictor(checkpoint)
  chosen = layout if layout is not None else predictor.datasets[0][0]
  prompts = predictor.layout_prompts(chosen)
  s = predictor.size
  if detector is None:
    fn, hw = serving_fn(predictor, prompts), (s, s)
  else:
    fn = detector_serving_fn(predictor, prompts, model, max_faces)
    hw = tuple(int(v) for v in image_size)
  if batch:
    spec = jax.ShapeDtypeStruct((batch,) + hw + (3,), jnp.uint8)
  else:
    from jax import export as jax_export  # pylint: disable=g-import-not-at-top
    (b,) = jax_export.symbolic_shape('b')
    spec = jax.ShapeDtypeStruct((b,) + hw + (3,), jnp.uint8)
  out.mkdir(parents=True, exist_ok=True)
  try:
    writer = dict(stablehlo=_export_stablehlo, onnx=_export_onnx,
                  savedmodel=_export_savedmodel,
                  tflite=_export_tflite)[fmt]
    platforms = writer(fn, spec, out, _example(spec, detector is not None))
  except JaxlmError:
    shutil.rmtree(out, ignore_errors=True)  # no half-made artifact
    raise
  except Exception as e:  # a converter that cannot handle an op
    shutil.rmtree(out, ignore_errors=True)
    raise JaxlmError(f'--format {fmt}: the {predictor.family.name} model '
                     f'cannot be exported: {type(e).__name__}: '
                     f'{str(e).splitlines()[0][:300]}') from None
  meta = dict(format=fmt, family=predictor.family.name,
              checkpoint=str(Path(checkpoint).expanduser().absolute()),
              step=predictor.step, layout=str(chosen),
              num_points=int(len(prompts)), image_size=s,
              batch=batch or None, platforms=platforms)
  uncertainty = ['uncertainty'] if predictor.family.uncertainty else []
  if detector is None:
    meta.update(input='images (B, S, S, 3) uint8 RGB face crops',
                outputs=['landmarks'] + uncertainty,
                units='[0, 1] crop units (x, y)',
                crop_rule='square of 1.2 x the face box longer side, '
                          'centred on the box, resized to S '
                          '(square_crop_affine)')
  else:
    meta.update(input=f'images (B, {hw[0]}, {hw[1]}, 3) uint8 RGB',
                input_size=list(hw), detector=detector, max_faces=max_faces,
                outputs=['boxes', 'scores', 'landmarks'] + uncertainty,
                units='image pixels (x, y); boxes x0, y0, x1, y1; score 0 '
                      'and NaN landmarks in an empty slot')
  meta['jax'] = jax.__version__
  (out / META_FILE).write_text(json.dumps(meta, indent=1))
  log.info('exported %s (%s, %d points, batch %s) -> %s', fmt,
           predictor.family.name, len(prompts), batch or 'any', out)
  return meta


def load(folder):
  """An exported StableHLO folder as a function: images (B, S, S, 3) uint8
  -> {'landmarks'[, 'uncertainty']} (jax arrays, crop units); for a
  --detector export, images (B, H, W, 3) -> {'boxes', 'scores',
  'landmarks'[, 'uncertainty']} in image pixels (export.json says which)."""
  from jax import export as jax_export  # pylint: disable=g-import-not-at-top
  folder = Path(folder)
  path = folder / STABLEHLO_FILE
  if not path.is_file():
    raise JaxlmError(f'{folder}: no {STABLEHLO_FILE} (not a StableHLO '
                     f'export)')
  exp = jax_export.deserialize(bytearray(path.read_bytes()))
  return exp.call
