"""benchmarks/profile_step.py on a tiny TUFA: the trace's ops are matched to
the compiled HLO and grouped by kind, pass and model component."""

import json
import sys

import pytest

from conftest import ROOT

sys.path.insert(0, str(ROOT / 'benchmarks'))
import profile_step  # pylint: disable=g-import-not-at-top,wrong-import-position


def test_module_path_and_pass():
  name = 'jit(train_step)/transpose(jvp(TUFA))/encoder/blocks_3/fc1/dot_general'
  assert profile_step.module_path(name, 2) == 'encoder/blocks_*'
  assert profile_step.module_path(name, 3) == 'encoder/blocks_*/fc1'
  assert profile_step.which_pass(name) == 'backward'
  assert profile_step.which_pass('jit(train_step)/jvp(TUFA)/head/add') == \
      'forward'
  assert profile_step.module_path('jit(train_step)/add', 2) == \
      '(outside the model)'


@pytest.mark.slow
def test_a_tiny_step_is_accounted_for(tmp_path, capsys):
  out = tmp_path / 'profile.json'
  profile_step.main(['--config', str(ROOT / 'configs' / 'tufa_demo.py'),
                     '--batch', '2', '--prompts', '19', '--image-size', '64',
                     '--steps', '1', '--trace-dir', str(tmp_path / 'trace'),
                     '--json', str(out)])
  data = json.loads(out.read_text())
  assert (tmp_path / 'trace' / 'step.hlo.txt').exists()
  # nearly all op time is matched to an instruction of the compiled step
  assert data['ops_ms'] > 0 and len(data['ops']) > 50
  assert data['unmatched_ms'] < 0.25 * data['ops_ms']
  assert {'forward', 'backward'} <= set(data['by_pass'])
  assert any('dot' in kind for kind in data['by_kind'])
  assert any(path.startswith('encoder/blocks_*') for path in data['by_module'])
  printed = capsys.readouterr().out
  assert 'By kind' in printed and 'Top 25 instructions' in printed
