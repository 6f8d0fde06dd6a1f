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
              uncertainty]}`; needs tensorflow, and a TensorFlow whose
              StableHLO reads this JAX's (TensorFlow 2.21, the newest on
              PyPI today, cannot run JAX 0.10's: the export then fails
              naming the op). TFLite would go through that SavedModel, so
              it waits for the same TensorFlow.
OUT/export.json records the format, family, checkpoint step, layout, number
of points, input size, batch and the crop rule.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from jaxlm.errors import JaxlmError
from jaxlm.inference import Predictor, make_predict

log = logging.getLogger('jaxlm')

FORMATS = ('stablehlo', 'onnx', 'savedmodel')
ONNX_FILE = 'model.onnx'
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


def _platforms() -> tuple[str, ...]:
  """Platforms to lower for: this backend's, plus CUDA and TPU where the
  lowering works without them."""
  return tuple(dict.fromkeys([jax.default_backend(), 'cpu', 'cuda', 'tpu']))


def _export_stablehlo(fn, spec, out: Path) -> list[str]:
  from jax import export as jax_export  # pylint: disable=g-import-not-at-top
  try:
    exp = jax_export.export(jax.jit(fn), platforms=_platforms())(spec)
  except Exception:  # pylint: disable=broad-except
    # some lowerings exist only for the platform at hand
    exp = jax_export.export(jax.jit(fn))(spec)
  (out / STABLEHLO_FILE).write_bytes(exp.serialize())
  return list(exp.platforms)


def _export_onnx(fn, spec, out: Path) -> list[str]:
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
  batch = spec.shape[0] if isinstance(spec.shape[0], int) else 2
  x = np.random.default_rng(0).integers(
      0, 256, (batch,) + tuple(spec.shape[1:]), np.uint8)
  session = onnxruntime.InferenceSession(str(out / ONNX_FILE))
  got = session.run(names, {'images': x})
  want = jax.device_get(jax.jit(fn)(x))
  err = max(float(np.abs(g - want[k]).max()) for g, k in zip(got, names))
  if not err <= 1e-3:
    raise JaxlmError(f'--format onnx: onnxruntime differs from the JAX model '
                     f'by {err:.3g} crop units (more than 1e-3)')
  log.info('onnxruntime matches the JAX model to %.2g crop units', err)
  return ['onnx']


def _export_savedmodel(fn, spec, out: Path) -> list[str]:
  try:
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    from jax.experimental import jax2tf  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise JaxlmError(f'--format savedmodel needs tensorflow ({e}); pip '
                     f'install tensorflow-cpu') from None
  batch = None if not isinstance(spec.shape[0], int) else spec.shape[0]
  poly = None if batch is not None else ['(b, ...)']
  module = tf.Module()
  module.serve = tf.function(
      jax2tf.convert(fn, polymorphic_shapes=poly,
                     native_serialization_platforms=('cpu', 'cuda')),
      input_signature=[tf.TensorSpec((batch,) + spec.shape[1:], tf.uint8,
                                     name='images')], autograph=False)
  tf.saved_model.save(module, str(out / 'savedmodel'),
                      signatures={'serving_default': module.serve})
  # TensorFlow runs the StableHLO inside (XlaCallModule) with its own
  # StableHLO version: check that it can, once, before calling it written.
  served = tf.saved_model.load(str(out / 'savedmodel'))
  zeros = tf.zeros((batch or 1,) + tuple(spec.shape[1:]), tf.uint8)
  try:
    served.signatures['serving_default'](images=zeros)
  except Exception as e:  # pylint: disable=broad-except
    text = str(e)
    op = re.search(r'current operation: %\S+ = "([\w.]+)"', text)
    why = (f'this TensorFlow ({tf.__version__}) cannot run op '
           f'{op.group(1)!r} of this JAX ({jax.__version__})' if op else
           text.strip().splitlines()[-1][:300])
    raise JaxlmError(f'--format savedmodel: {why}; use --format stablehlo, '
                     f'or a TensorFlow release as new as this JAX') from None
  return ['cpu', 'cuda']


def export(checkpoint, out, *, fmt: str = 'stablehlo', batch: int = 1,
           layout=None) -> dict:
  """Writes the serving artifact of `checkpoint` to folder `out` (new or
  empty); returns its export.json record. batch 0: any batch size."""
  if fmt not in FORMATS:
    raise JaxlmError(f'--format {fmt!r}: expected one of {", ".join(FORMATS)}'
                     f' (TFLite is not available: it needs a TensorFlow that '
                     f'runs this JAX\'s StableHLO, see jaxlm/export.py)')
  if batch < 0:
    raise JaxlmError(f'--batch {batch}: must be >= 0 (0: any batch size)')
  out = Path(os.path.expanduser(str(out)))
  if out.exists() and any(out.iterdir()):
    raise JaxlmError(f'{out} exists and is not empty; export to a new folder')
  predictor = Predictor(checkpoint)
  chosen = layout if layout is not None else predictor.datasets[0][0]
  prompts = predictor.layout_prompts(chosen)
  fn = serving_fn(predictor, prompts)
  s = predictor.size
  if batch:
    spec = jax.ShapeDtypeStruct((batch, s, s, 3), jnp.uint8)
  else:
    from jax import export as jax_export  # pylint: disable=g-import-not-at-top
    (b,) = jax_export.symbolic_shape('b')
    spec = jax.ShapeDtypeStruct((b, s, s, 3), jnp.uint8)
  out.mkdir(parents=True, exist_ok=True)
  try:
    writer = dict(stablehlo=_export_stablehlo, onnx=_export_onnx,
                  savedmodel=_export_savedmodel)[fmt]
    platforms = writer(fn, spec, out)
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
              batch=batch or None, platforms=platforms,
              input='images (B, S, S, 3) uint8 RGB face crops',
              outputs=['landmarks'] + (['uncertainty'] if
                                       predictor.family.uncertainty else []),
              units='[0, 1] crop units (x, y)',
              crop_rule='square of 1.2 x the face box longer side, centred '
                        'on the box, resized to S (square_crop_affine)',
              jax=jax.__version__)
  (out / META_FILE).write_text(json.dumps(meta, indent=1))
  log.info('exported %s (%s, %d points, batch %s) -> %s', fmt,
           predictor.family.name, len(prompts), batch or 'any', out)
  return meta


def load(folder):
  """An exported StableHLO folder as a function images (B, S, S, 3) uint8
  -> {'landmarks'[, 'uncertainty']} (jax arrays, crop units)."""
  from jax import export as jax_export  # pylint: disable=g-import-not-at-top
  folder = Path(folder)
  path = folder / STABLEHLO_FILE
  if not path.is_file():
    raise JaxlmError(f'{folder}: no {STABLEHLO_FILE} (not a StableHLO '
                     f'export)')
  exp = jax_export.deserialize(bytearray(path.read_bytes()))
  return exp.call
