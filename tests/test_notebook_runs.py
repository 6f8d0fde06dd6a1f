"""Where the notebooks find their runs (`jaxlm.notebook_runs`)."""

import pytest

from jaxlm import notebook_runs
from jaxlm.errors import JaxlmError

from conftest import ROOT


@pytest.fixture
def no_variables(monkeypatch):
  for variable, _ in notebook_runs.RUNS.values():
    monkeypatch.delenv(variable, raising=False)
  monkeypatch.delenv(notebook_runs.TINY_VARIABLE, raising=False)


def test_the_repository_is_found_from_the_package_not_the_cwd(
    no_variables, tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  assert notebook_runs.repository() == ROOT
  demo = ROOT / 'workdirs' / 'demo'
  if demo.is_dir():
    assert notebook_runs.run_folder('demo') == demo


def test_a_missing_run_says_which_command_trains_it(no_variables, tmp_path,
                                                    monkeypatch):
  monkeypatch.setattr(notebook_runs, 'repository', lambda: tmp_path)
  with pytest.raises(JaxlmError, match=r'workdirs/demo: run `make demo`.*'
                     r'or set JAXLM_NOTEBOOK_RUN'):
    notebook_runs.run_folder('demo')
  assert notebook_runs.run_folder('dslpt', required=False) is None
  (tmp_path / 'workdirs' / 'slpt').mkdir(parents=True)
  assert notebook_runs.run_folder('slpt') == tmp_path / 'workdirs' / 'slpt'


def test_the_variable_wins_and_empty_means_none(no_variables, tmp_path,
                                                monkeypatch):
  monkeypatch.setattr(notebook_runs, 'repository', lambda: tmp_path)
  monkeypatch.setenv('JAXLM_NOTEBOOK_RUN', str(tmp_path))
  assert notebook_runs.run_folder() == tmp_path
  monkeypatch.setenv('JAXLM_NOTEBOOK_RUN', str(tmp_path / 'nothing'))
  with pytest.raises(JaxlmError, match='JAXLM_NOTEBOOK_RUN=.*nothing: no '
                     'such run folder'):
    notebook_runs.run_folder()
  monkeypatch.setenv('JAXLM_NOTEBOOK_SLPT_RUN', '')
  (tmp_path / 'workdirs' / 'slpt').mkdir(parents=True)
  assert notebook_runs.run_folder('slpt', required=False) is None
  with pytest.raises(JaxlmError, match='JAXLM_NOTEBOOK_SLPT_RUN is empty'):
    notebook_runs.run_folder('slpt')
  with pytest.raises(JaxlmError, match="notebook run 'x'"):
    notebook_runs.run_folder('x')


def test_tiny(no_variables, monkeypatch):
  assert not notebook_runs.tiny()
  monkeypatch.setenv('JAXLM_NOTEBOOK_TINY', '1')
  assert notebook_runs.tiny()
  monkeypatch.setenv('JAXLM_NOTEBOOK_TINY', 'maybe')
  with pytest.raises(JaxlmError, match='JAXLM_NOTEBOOK_TINY'):
    notebook_runs.tiny()
