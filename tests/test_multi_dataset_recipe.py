"""The real multi-dataset recipes train and evaluate on TFDS data built from
fake files in the four datasets' original formats (no code changes):
configs/tufa_vits16_multi.py as it is, configs/infinite3d_convnext_multi.py
(paper 001, on the 3D-query recipe's data) with a tiny network."""

import json

import pytest

from jaxlm import checkpoints, cli
from jaxlm.data.formats import fake

pytestmark = [pytest.mark.slow, pytest.mark.integration]
EVAL_FACES = {'wflw': 2, 'w300_full': 3, 'cofw': 2, 'merlrav': 5}


@pytest.fixture(scope='module')
def built(tmp_path_factory):
  """The four datasets, built once into one TFDS data_dir."""
  tmp = tmp_path_factory.mktemp('recipe')
  raw, data = tmp / 'raw', tmp / 'tfds'
  fake.write_wflw(raw / 'wflw', dict(train=4, test=2))
  fake.write_300w(raw / 'w300', n=1, private=False, masked=False)
  fake.write_merlrav(raw / 'merl_rav', n=1)
  fake.write_cofw(raw / 'cofw', dict(train=2, test=2), cofw68=False)
  for name, folder in [('wflw', 'wflw'), ('w300', 'w300'),
                       ('merl_rav', 'merl_rav'), ('cofw/cofw29', 'cofw')]:
    assert cli.main(['build', name, '--manual_dir', str(raw / folder),
                     '--data_dir', str(data), '--no-progress']) == 0
  return data


def train_and_eval(config, data, work, capsys, *overrides):
  rc = cli.main(['train', '--config', config, '--workdir', str(work),
                 '--eval', '--no-progress', f'--config.data.data_dir={data}',
                 '--config.train.steps=2', '--config.train.batch_size=4',
                 '--config.eval.batch_size=4',
                 '--config.data.mean_shape_samples=4', *overrides])
  assert rc == 0, capsys.readouterr().err
  for name, count in EVAL_FACES.items():
    res = json.loads((work / 'eval' / f'{name}.json').read_text())
    assert res['count'] == count
    assert res['nme'] > 0
  assert json.loads((work / 'eval' / 'merlrav.json').read_text())[
      'normaliser'] == 'box'


def test_multi_dataset_recipe_runs_on_built_fake_datasets(built, tmp_path,
                                                          capsys):
  train_and_eval('configs/tufa_vits16_multi.py', built, tmp_path / 'run',
                 capsys)
  assert 'random weights' in capsys.readouterr().err


def test_infinite3d_recipe_runs_on_built_fake_datasets(built, tmp_path,
                                                       capsys):
  work = tmp_path / 'run'
  train_and_eval('configs/infinite3d_convnext_multi.py', built, work, capsys,
                 '--config.model.variant=tiny:depths=1-1-1-1:dims=8-16-16-16',
                 '--config.model.predictor_width=32',
                 '--config.model.predictor_heads=2',
                 '--config.model.crop_size=32', '--config.model.stn_size=32',
                 '--config.data.image_size=64')
  lines = [json.loads(l) for l in
           (work / 'metrics.jsonl').read_text().splitlines()]
  # S and the 3D head trained (their terms are logged) ...
  assert {'offset_rms', 'stn_scale'} <= set(lines[-1])
  # ... with the deformer: one embedding per trained dataset in the weights
  _, datasets, variables, _ = checkpoints.load_run(work)
  table = variables['params']['query_deformer']['embed']['embedding']
  assert table.shape[0] == len(datasets) == 4
