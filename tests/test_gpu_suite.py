"""benchmarks/gpu_suite.py's dry run: every part on the CPU with a tiny
TUFA, the results file with every section (the GPU run writes the same)."""

import json
import sys

import pytest

from conftest import ROOT

sys.path.insert(0, str(ROOT / 'benchmarks'))
import gpu_suite  # pylint: disable=g-import-not-at-top,wrong-import-position


def test_dry_run_writes_every_section(tmp_path):
  path = gpu_suite.main(['--dry-run', '--out', str(tmp_path), '--models',
                         'tufa_s16', '--remat', 'none,blocks'])
  assert path.parent == tmp_path and path.name.endswith('-cpu.md')
  text = path.read_text()
  for section in gpu_suite.SECTIONS:
    assert f'\n{section}\n' in text, section
  for part in ('training', 'evaluation', 'end_to_end', 'all (with start-up)'):
    assert f'| {part} | ' in text, part
  data = json.loads(path.with_suffix('.json').read_text())
  assert [(r['label'], r['remat'], r['batch']) for r in data['train']] == [
      ('tufa_s16', 'none', 2), ('tufa_s16', 'blocks', 2)]
  assert all(r['img_per_s'] > 0 and r['step_gib'] > 0 and r['flops'] > 0
             for r in data['train'])
  assert [r['label'] for r in data['eval']] == ['tufa_s16']
  assert data['eval'][0]['img_per_s'] > 0
  e2e = data['end_to_end']
  assert e2e['faces'] == 8 and e2e['batch'] == 2, e2e
  assert min(e2e['pipeline_img_per_s'], e2e['step_img_per_s'],
             e2e['img_per_s']) > 0
  assert '| input pipeline alone | ' in text and 'Input keeps up: ' in text
  # the targets beside the measured figures
  for what, target in (('training', '6,000'), ('end to end', '5,000'),
                       ('evaluation', '20,000')):
    assert f'| TUFA S/16 {what} | {target} | ' in text, what


def test_options():
  a = gpu_suite.parse_args(['--batch', '64,tufa_s8=16', '--quick'])
  assert a.batch['tufa_s8'] == 16 and a.batch['slpt'] == 64
  assert a.budget == 200 and a.steps == 10 and a.eval_batch == 1024
  with pytest.raises(SystemExit):
    gpu_suite.parse_args(['--models', 'tufa,nonesuch'])
