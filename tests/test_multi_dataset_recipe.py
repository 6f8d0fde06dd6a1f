"""configs/tufa_vits16_multi.py trains and evaluates on TFDS data built from
fake files in the four datasets' original formats (no code changes)."""

import json

import pytest

from jaxlm import cli
from jaxlm.data.formats import fake


@pytest.mark.slow
@pytest.mark.integration
def test_multi_dataset_recipe_runs_on_built_fake_datasets(tmp_path, capsys):
  raw, data = tmp_path / 'raw', tmp_path / 'tfds'
  fake.write_wflw(raw / 'wflw', dict(train=4, test=2))
  fake.write_300w(raw / 'w300', n=1, private=False, masked=False)
  fake.write_merlrav(raw / 'merl_rav', n=1)
  fake.write_cofw(raw / 'cofw', dict(train=2, test=2), cofw68=False)
  for name, folder in [('wflw', 'wflw'), ('w300', 'w300'),
                       ('merl_rav', 'merl_rav'), ('cofw/cofw29', 'cofw')]:
    assert cli.main(['build', name, '--manual_dir', str(raw / folder),
                     '--data_dir', str(data), '--no-progress']) == 0
  work = tmp_path / 'run'
  rc = cli.main(['train', '--config', 'configs/tufa_vits16_multi.py',
                 '--workdir', str(work), '--eval', '--no-progress',
                 f'--config.data.data_dir={data}', '--config.train.steps=2',
                 '--config.train.batch_size=4', '--config.eval.batch_size=4',
                 '--config.data.mean_shape_samples=4'])
  assert rc == 0, capsys.readouterr().err
  for name in ('wflw', 'w300_full', 'cofw', 'merlrav'):
    res = json.loads((work / 'eval' / f'{name}.json').read_text())
    assert res['count'] == {'wflw': 2, 'w300_full': 3, 'cofw': 2,
                            'merlrav': 5}[name]
    assert res['nme'] > 0
  assert json.loads((work / 'eval' / 'merlrav.json').read_text())[
      'normaliser'] == 'box'
  assert 'random weights' in capsys.readouterr().err
