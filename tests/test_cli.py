"""The `jaxlm` command end to end, and its one-line errors on bad input."""

import json
import subprocess
import sys

import numpy as np
import pytest

from jaxlm import cli
from jaxlm.cli import main
from jaxlm.data.synthetic import SyntheticFaces
from jaxlm.plots import save_rgb
from conftest import ROOT

pytestmark = [pytest.mark.slow, pytest.mark.integration]

TINY = [
    '--config.model.variant=Ti/16:depth=1', '--config.model.decoder_layers=1',
    '--config.model.decoder_mlp=64', '--config.model.head_hidden=32',
    '--config.data.image_size=64', '--config.data.mean_shape_samples=8',
    '--config.data.num_anchors=8', '--config.data.threads=1',
    '--config.train.batch_size=2', '--config.train.steps=2',
    '--config.train.checkpoint_every=2', '--config.eval.batch_size=4',
    '--config.data.eval.syn98.size=4', '--config.data.eval.syn68.size=4',
    '--config.data.eval.syn29.size=4', '--config.data.eval.syn19_zero_shot.size=4',
]


@pytest.fixture(scope='module')
def run(tmp_path_factory):
  """A tiny trained-and-evaluated workdir, shared by the tests below."""
  workdir = tmp_path_factory.mktemp('run')
  code = main(['train', '--config', str(ROOT / 'configs' / 'tufa_demo.py'),
               '--workdir', str(workdir), '--eval', '--no-progress'] + TINY)
  assert code == 0
  return workdir


@pytest.fixture(scope='module')
def face(tmp_path_factory):
  path = tmp_path_factory.mktemp('img') / 'face.png'
  save_rgb(path, SyntheticFaces('syn98', 1, seed=9, image_size=64)[0]['image'])
  return path


def test_train_eval_writes_report(run):
  for name in ('syn98', 'syn68', 'syn29', 'syn19_zero_shot'):
    res = json.loads((run / 'eval' / f'{name}.json').read_text())
    assert res['count'] == 4 and np.isfinite(res['nme'])
  assert json.loads((run / 'eval' / 'syn19_zero_shot.json').read_text()
                    )['zero_shot']
  assert (run / 'eval' / 'ced.png').exists()
  assert '| syn19_zero_shot | syn19 | zero-shot |' in (
      run / 'eval' / 'report.md').read_text()
  assert list((run / 'tb').glob('events.out.tfevents.*'))


def test_eval_of_a_step_writes_into_its_run_folder(run, monkeypatch):
  # Before: --checkpoint RUN/checkpoints/2 wrote RUN/checkpoints/2/eval,
  # inside orbax's step folder.
  monkeypatch.setenv('JAXLM_TEST_RUN', str(run))
  assert main(['eval', '--checkpoint=$JAXLM_TEST_RUN/checkpoints/2',
               '--no-progress']) == 0
  assert json.loads((run / 'eval_2' / 'syn98.json').read_text())['count'] == 4
  assert not (run / 'checkpoints' / '2' / 'eval').exists()


def test_predict_crop_none_and_zero_shot_prompts(run, face, tmp_path):
  out, js = tmp_path / 'o.png', tmp_path / 'o.json'
  assert main(['predict', '--workdir', str(run), '--image', str(face),
               '--crop', 'none', '--layout', 'syn98', '--out', str(out),
               '--json', str(js)]) == 0
  pts = np.asarray(json.loads(js.read_text())['landmarks'])
  assert pts.shape == (98, 2) and out.exists()
  prompts = run / 'eval' / 'prompts_syn19_zero_shot.npy'
  assert main(['predict', '--workdir', str(run), '--image', str(face),
               '--box', '8,8,56,56', '--layout', str(prompts), '--json',
               str(js)]) == 0
  assert len(json.loads(js.read_text())['landmarks']) == 19


def _error(capsys, argv):
  code = main(argv)
  err = capsys.readouterr().err.strip().splitlines()
  assert code == 2
  return err[-1]


def test_bad_inputs_give_one_clear_line(run, face, tmp_path, capsys):
  demo = str(ROOT / 'configs' / 'tufa_demo.py')
  w = str(run)
  assert "unknown config key 'train.stepz'" in _error(
      capsys, ['train', '--config', demo, '--workdir', str(tmp_path / 'x'),
               '--config.train.stepz=3'])
  assert 'expected an int' in _error(
      capsys, ['train', '--config', demo, '--workdir', str(tmp_path / 'x'),
               '--config.train.steps=lots'])
  assert 'checkpoint not found' in _error(
      capsys, ['eval', '--checkpoint', str(tmp_path / 'missing')])
  text = tmp_path / 'notes.png'
  text.write_text('not an image')
  assert 'cannot decode' in _error(
      capsys, ['predict', '--workdir', w, '--image', str(text)])
  assert 'outside' in _error(
      capsys, ['predict', '--workdir', w, '--image', str(face), '--box',
               '500,500,600,600'])
  bad = tmp_path / 'bad.npy'
  np.save(bad, np.zeros((5, 3)))
  assert 'shape (5, 3)' in _error(
      capsys, ['predict', '--workdir', w, '--image', str(face), '--layout',
               str(bad), '--crop', 'none'])
  assert 'not a training dataset' in _error(
      capsys, ['predict', '--workdir', w, '--image', str(face), '--layout',
               'wflw98', '--crop', 'none'])


def test_path_flags_expand_home_and_variables(tmp_path, monkeypatch, capsys):
  # Before: `--out=~/fake` (no shell expands ~ after =) wrote to ./~/fake.
  monkeypatch.setenv('HOME', str(tmp_path))
  monkeypatch.chdir(tmp_path)
  assert main(['fake-data', 'wflw', '--out=~/fake', '--num', '1']) == 0
  assert (tmp_path / 'fake' / 'WFLW_images').is_dir()
  assert not (tmp_path / '~').exists()
  assert 'environment variable NO_SUCH_JAXLM_VAR is not set' in _error(
      capsys, ['fake-data', 'wflw', '--out=$NO_SUCH_JAXLM_VAR/x'])


def test_console_entry_point_exit_code(tmp_path):
  r = subprocess.run([sys.executable, '-m', 'jaxlm', 'eval', '--checkpoint',
                      str(tmp_path / 'nothing')], capture_output=True,
                     text=True)
  assert r.returncode == 2
  assert r.stderr.strip().splitlines()[-1].startswith('error: checkpoint')


def test_convert_offers_every_converter_kind():
  from jaxlm import convert
  parser = cli.build_parser()
  sub = next(a for a in parser._actions if a.dest == 'command')
  kind = next(a for a in sub.choices['convert']._actions if a.dest == 'kind')
  assert set(kind.choices) == set(convert.KINDS)
