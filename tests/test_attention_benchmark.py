"""benchmarks/attention_cpu.py on a tiny shape: every way of writing
attention it times computes the same outputs and gradients."""

import re
import sys

from conftest import ROOT

sys.path.insert(0, str(ROOT / 'benchmarks'))
import attention_cpu  # pylint: disable=g-import-not-at-top,wrong-import-position


def test_every_row_agrees_with_attend(capsys):
  attention_cpu.main(['--shape', '2,5,7,32,2', '--rounds', '1'])
  out = capsys.readouterr().out
  rows = re.findall(r'^(attend|heads-first|fused) .*max diff (\S+)$', out,
                    re.M)
  assert [name for name, _ in rows] == ['attend', 'heads-first', 'fused']
  assert all(float(diff) < 1e-5 for _, diff in rows), out
  assert re.search(r'forward +[\d.]+ ms \| forward\+backward +[\d.]+ ms',
                   out)
