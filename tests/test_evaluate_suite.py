"""`jaxlm eval --suite`: the benchmark tables on fake TFDS data.

One module fixture writes tiny fake WFLW and 300W files in their original
formats (`jaxlm fake-data`) and builds WFLW and 300W's default config
(`jaxlm build`): 300W-private and both COFW configs stay unbuilt, so the
suite must skip them with one line each. The model is the converted
TUFA fixture (official architecture, tiny, 29 and 68-point prompts).
The numbers are checked against a NumPy recomputation from the TFDS
records and the per-face predictions.
"""

import csv
import json
import logging

import ml_collections
import numpy as np
import pytest

pytest.importorskip('tensorflow_datasets')

from conftest import ROOT  # noqa: E402
from jaxlm import eval_suites, evaluate_suite  # noqa: E402
from jaxlm.cli import main  # noqa: E402

RUN = ROOT / 'tests' / 'fixtures' / 'runs_v0' / 'converted_tufa'


@pytest.fixture(scope='module')
def data_dir(tmp_path_factory):
  root = tmp_path_factory.mktemp('suite_data')
  for name, n in (('wflw', 2), ('w300', 1)):
    assert main(['fake-data', name, '--out', str(root / name), '--num',
                 str(n)]) == 0
  for spec in ('wflw', 'w300'):
    assert main(['build', spec, '--manual_dir',
                 str(root / spec.partition('/')[0]), '--data_dir',
                 str(root / 'tfds'), '--no-progress']) == 0
  return root / 'tfds'


@pytest.fixture(scope='module')
def suite_run(data_dir, tmp_path_factory):
  out = tmp_path_factory.mktemp('suite_out')
  logs = []
  handler = logging.Handler()
  handler.emit = lambda r: logs.append(r.getMessage())
  log = logging.getLogger('jaxlm')
  log.addHandler(handler)
  try:
    rc = main(['eval', '--checkpoint', str(RUN), '--suite', 'wflw,300w,cofw',
               '--out', str(out), f'--config.data.data_dir={data_dir}',
               '--no-progress'])
  finally:
    log.removeHandler(handler)
  assert rc == 0
  return out, logs


def _records(data_dir, tfds_name, split):
  import tensorflow_datasets as tfds
  from jaxlm.data import tfds as _  # noqa: F401
  src = tfds.builder(tfds_name, data_dir=str(data_dir)).as_data_source(
      split=split)
  return [src[i] for i in range(len(src))]


def test_every_subset_row_with_numbers(suite_run):
  out, _ = suite_run
  report = json.loads((out / 'suite.json').read_text())
  rows = {t['name']: [r['label'] for r in t['rows']]
          for t in report['tables']}
  assert rows == {
      'wflw': ['Full', 'Pose', 'Expression', 'Illumination', 'Make-up',
               'Occlusion', 'Blur'],
      '300w': ['Common', 'Challenging', 'Full']}
  for t in report['tables']:
    assert t['zero_shot'] and t['prompts'] == 'mean_shape'
    for r in t['rows']:
      for m in r['metrics'].values():
        assert np.isfinite([m['nme'], m['fr'], m['auc']]).all()
        assert m['count'] == r['faces'] > 0
  w300 = {r['label']: r['faces'] for r in report['tables'][1]['rows']}
  assert w300['Full'] == w300['Common'] + w300['Challenging']
  assert set(report['tables'][1]['rows'][0]['metrics']) == {
      'inter-ocular', 'inter-pupil'}
  md = (out / 'suite.md').read_text()
  for title in ('## WFLW', '## 300W', 'zero-shot', 'Make-up',
                'inter-pupil FR@0.1 %'):
    assert title in md
  with (out / 'suite.csv').open() as f:
    lines = list(csv.DictReader(f))
  assert len(lines) == 7 + 3 * 2  # rows x column groups
  for name in ('wflw', '300w'):
    assert (out / f'ced_{name}.png').stat().st_size > 1000


def test_wflw_nme_matches_a_numpy_recomputation(suite_run, data_dir):
  out, _ = suite_run
  report = json.loads((out / 'suite.json').read_text())
  wflw = {r['split']: r for r in report['tables'][0]['rows']}
  full = np.load(out / 'faces' / 'wflw_test.npz')
  # Ground truth: the stored records mapped to the photo by their affine.
  recs = _records(data_dir, 'wflw', 'test')
  gt = np.stack([r['landmarks'] @ r['to_image'][:, :2].T
                 + r['to_image'][:, 2] for r in recs])
  np.testing.assert_allclose(full['gt'], gt, atol=1e-3)
  # Inter-ocular NME: WFLW's outer eye corners are points 60 and 72.
  iod = np.linalg.norm(gt[:, 60] - gt[:, 72], axis=-1)
  per_face = np.linalg.norm(full['pred'] - gt, axis=-1).mean(-1) / iod
  assert wflw['test']['metrics']['inter-ocular']['nme'] == pytest.approx(
      per_face.mean(), rel=1e-5)
  assert wflw['test']['metrics']['inter-ocular']['fr'] == pytest.approx(
      np.mean(per_face > 0.1))
  # Each attribute row is the full set's faces with that flag set.
  from jaxlm.data.formats import wflw as wflw_format
  for k, attr in enumerate(wflw_format.ATTRIBUTES):
    flags = np.array([r['attributes'][k] for r in recs], bool)
    row = wflw[f'test_{attr}']
    assert row['faces'] == flags.sum()
    assert row['metrics']['inter-ocular']['nme'] == pytest.approx(
        per_face[flags].mean(), rel=1e-5)


def test_300w_inter_pupil_recomputed(suite_run):
  out, _ = suite_run
  report = json.loads((out / 'suite.json').read_text())
  f = np.load(out / 'faces' / '300w_test_full.npz')
  # 300W's pupils: the means of the eye contours, points 36-41 and 42-47.
  ipd = np.linalg.norm(f['gt'][:, 36:42].mean(1) - f['gt'][:, 42:48].mean(1),
                       axis=-1)
  per_face = np.linalg.norm(f['pred'] - f['gt'], axis=-1).mean(-1) / ipd
  m = report['tables'][1]['rows'][2]['metrics']['inter-pupil']
  assert m['nme'] == pytest.approx(per_face.mean(), rel=1e-5)
  assert m['fr'] == pytest.approx(np.mean(per_face > 0.1))


def test_unbuilt_tables_are_skipped_with_one_line(suite_run, data_dir):
  out, logs = suite_run
  report = json.loads((out / 'suite.json').read_text())
  assert [s['table'] for s in report['skipped']] == ['300w_private',
                                                     'cofw', 'cofw68']
  for spec in ('w300/private', 'cofw/cofw29', 'cofw/cofw68'):
    lines = [m for m in logs if 'skipped' in m and spec in m]
    assert len(lines) == 1, logs
    assert f'jaxlm build {spec} --manual_dir' in lines[0]
    assert str(data_dir) in lines[0]
  assert 'Not evaluated' in (out / 'suite.md').read_text()


def test_unknown_suite_name_lists_the_known_ones(capsys):
  assert main(['eval', '--checkpoint', str(RUN), '--suite', 'wflw,nope',
               '--no-progress']) == 2
  err = capsys.readouterr().err
  assert err.count('error:') == 1
  assert "'nope'" in err and all(n in err for n in eval_suites.SUITES)


def test_trained_prompts_when_trained_on_the_benchmark(data_dir, tmp_path,
                                                      monkeypatch):
  # The checkpoint's 68-point training dataset, declared as built from
  # 300W: the 300W table takes its prompts; the others stay zero-shot.
  from jaxlm import evaluate, inference
  run_faces = []
  predict_faces = evaluate.predict_faces

  def counting(predict, variables, source, *args):
    run_faces.append(len(source))
    return predict_faces(predict, variables, source, *args)

  monkeypatch.setattr(evaluate, 'predict_faces', counting)
  pred = inference.Predictor(str(RUN))
  cfg = pred.config
  cfg.data.train.syn68 = ml_collections.ConfigDict(dict(
      source='tfds', tfds_name='w300', split='train', layout='300w68'))
  cfg.data.data_dir = str(data_dir)
  w300 = eval_suites.W300
  assert evaluate_suite.trained_prompts(w300, cfg, pred.datasets) == 'syn68'
  assert evaluate_suite.trained_prompts(eval_suites.COFW, cfg,
                                        pred.datasets) is None
  report = evaluate_suite.evaluate_suite(cfg, pred, [('300w', w300)],
                                         tmp_path, progress=False)
  t = report['tables'][0]
  assert not t['zero_shot'] and t['prompts'] == 'syn68'
  # Common and challenging first; the full set's faces are all seen then.
  counts = {r['label']: r['faces'] for r in t['rows']}
  assert run_faces == [counts['Common'], counts['Challenging']]
  assert counts['Full'] == sum(run_faces)
  np.testing.assert_allclose(
      np.load(tmp_path / 'prompts_300w.npy'),
      np.asarray(inference.dataset_prompts(pred.model, pred.variables,
                                           'syn68')))
  assert 'trained (syn68)' in evaluate_suite.format_suite(report)
