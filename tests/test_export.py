"""`jaxlm export`: the serving artifacts, run by their own runtimes
(jax.export's deserialisation, onnxruntime), predict what the model
predicts. The model is the tiny TUFA run of tests/fixtures/runs_v0."""

import json

import numpy as np
import pytest

import jaxlm
from jaxlm import cli
from conftest import ROOT

RUN = ROOT / 'tests' / 'fixtures' / 'runs_v0' / 'trained'


@pytest.fixture(scope='module')
def model():
  return jaxlm.load(RUN)


def test_export_stablehlo_equals_the_model(model, tmp_path, capsys):
  """The serialized StableHLO, deserialised by jax.export, predicts what
  the model predicts (any batch size with --batch 0)."""
  from jaxlm import export
  crops = np.random.default_rng(3).integers(0, 256, (3, 32, 32, 3),
                                           np.uint8)
  want = model.predict_crops(crops, model.layout_prompts('syn68'))[0]
  for batch in ('3', '0'):
    out = tmp_path / f'b{batch}'
    assert cli.main(['export', '--checkpoint', str(RUN), '--out', str(out),
                     '--batch', batch, '--layout', 'syn68']) == 0
    got = export.load(out)(crops)
    np.testing.assert_allclose(np.asarray(got['landmarks']), want, atol=1e-5)
    meta = json.loads((out / 'export.json').read_text())
    assert meta['num_points'] == 68 and meta['image_size'] == 32
  assert np.asarray(export.load(tmp_path / 'b0')(crops[:2])['landmarks']
                    ).shape == (2, 68, 2)
  assert cli.main(['export', '--checkpoint', str(RUN), '--out',
                   str(tmp_path / 'b0')]) == 2  # not empty: refused
  assert cli.main(['export', '--checkpoint', str(RUN), '--out',
                   str(tmp_path / 'x'), '--format', 'coreml']) == 2
  err = capsys.readouterr().err
  assert 'not empty' in err and "--format 'coreml'" in err and 'tflite' in err


def test_export_onnx_runs_in_onnxruntime(model, tmp_path):
  """jax2onnx's model, run by onnxruntime at two batch sizes (the batch is
  symbolic with --batch 0), predicts what the model predicts."""
  ort = pytest.importorskip('onnxruntime')
  pytest.importorskip('jax2onnx')
  assert cli.main(['export', '--checkpoint', str(RUN), '--out',
                   str(tmp_path / 'o'), '--batch', '0', '--format', 'onnx',
                   '--layout', 'syn68']) == 0
  session = ort.InferenceSession(str(tmp_path / 'o' / 'model.onnx'))
  for n in (1, 3):
    crops = np.random.default_rng(n).integers(0, 256, (n, 32, 32, 3),
                                              np.uint8)
    (got,) = session.run(['landmarks'], {'images': crops})
    want = model.predict_crops(crops, model.layout_prompts('syn68'))[0]
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_export_savedmodel_and_tflite_run_in_tensorflow(model, tmp_path):
  """TensorFlow runs the SavedModel and its TFLite interpreter the .tflite
  file; both predict what the model predicts (TFLite with builtin ops
  only, at its fixed batch)."""
  tf = pytest.importorskip('tensorflow')
  crops = np.random.default_rng(5).integers(0, 256, (2, 32, 32, 3),
                                           np.uint8)
  want = model.predict_crops(crops, model.layout_prompts('syn68'))[0]
  for fmt in ('savedmodel', 'tflite'):
    assert cli.main(['export', '--checkpoint', str(RUN), '--out',
                     str(tmp_path / fmt), '--batch', '2', '--format', fmt,
                     '--layout', 'syn68']) == 0
  served = tf.saved_model.load(str(tmp_path / 'savedmodel' / 'savedmodel'))
  got = served.signatures['serving_default'](images=tf.constant(crops))
  np.testing.assert_allclose(got['landmarks'].numpy(), want, atol=1e-5)
  runner = tf.lite.Interpreter(model_path=str(
      tmp_path / 'tflite' / 'model.tflite')).get_signature_runner()
  np.testing.assert_allclose(runner(images=crops)['landmarks'], want,
                             atol=1e-4)
  assert sorted(p.name for p in (tmp_path / 'tflite').iterdir()) == [
      'export.json', 'model.tflite']
  assert cli.main(['export', '--checkpoint', str(RUN), '--out',
                   str(tmp_path / 'any'), '--batch', '0', '--format',
                   'tflite']) == 2
  assert not (tmp_path / 'any').exists()
