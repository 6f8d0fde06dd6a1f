"""benchmarks/attention_cpu.py on a tiny shape: every way of writing
attention it times, torch's included when it imports, gives the outputs and
gradients of the first row (jaxlm's `attend_per_head`)."""

import re
import sys

from conftest import ROOT

sys.path.insert(0, str(ROOT / 'benchmarks'))
import attention_cpu  # pylint: disable=g-import-not-at-top,wrong-import-position


def test_every_row_agrees_with_the_first(capsys):
  # head size 32: 1/sqrt(32) is no power of two, so the scale rounds
  attention_cpu.main(['--shape', '2,5,7,96,3', '--rounds', '1'])
  out = capsys.readouterr().out
  rows = re.findall(r'^(.+?) +forward +[\d.]+ ms \| forward\+backward +'
                    r'[\d.]+ ms \| max diff (\S+)', out, re.M)
  names = [name for name, _ in rows]
  assert names[:4] == ['per-head', 'per-head, jax.nn.softmax',
                       'heads-first', 'fused'], out
  try:
    import torch  # pylint: disable=g-import-not-at-top,unused-import
    assert names[4:] == ['torch', 'torch sdpa'], out
  except ImportError:
    assert len(names) == 4, out
  assert all(float(diff) < 1e-5 for _, diff in rows), out
