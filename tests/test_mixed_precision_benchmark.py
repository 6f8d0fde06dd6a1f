"""benchmarks/mixed_precision.py on a tiny TUFA: float32, bf16 and the
float32 control (seed + 1) runs train with their own dtype and seed, the
table compares their windows, a second call reads the finished runs
instead of training them again, and a call with another config refuses
them."""

import json
import re
import sys

import pytest

from conftest import ROOT, TINY_TUFA_ARGS
from jaxlm.errors import JaxlmError

sys.path.insert(0, str(ROOT / 'benchmarks'))
import mixed_precision  # pylint: disable=g-import-not-at-top,wrong-import-position

TINY = [*TINY_TUFA_ARGS, '--config.data.image_size=32',
        '--config.data.mean_shape_samples=8', '--config.train.batch_size=2',
        '--config.optim.warmup_steps=0', '--config.data.threads=1']


@pytest.mark.slow
def test_three_runs_compared_by_window_then_read_again(tmp_path, capsys):
  args = ['--config', str(ROOT / 'configs' / 'tufa_demo.py'), '--steps', '4',
          '--window', '2', '--control', '--workdir', str(tmp_path), *TINY]
  mixed_precision.main(args)
  out = capsys.readouterr().out
  rows = re.findall(r'^\| (\d+)-(\d+) \| ([\d.]+) \| ([\d.]+) \| ([+-][\d.]+)%'
                    r' \| ([\d.]+) \| ([+-][\d.]+)% \|$', out, re.M)
  assert [(r[0], r[1]) for r in rows] == [('1', '2'), ('3', '4')], out
  for _, _, f32, b16, d16, ctl, dctl in rows:
    f32, b16, ctl = float(f32), float(b16), float(ctl)
    assert float(d16) == pytest.approx(100 * (b16 - f32) / f32, abs=0.06)
    assert float(dctl) == pytest.approx(100 * (ctl - f32) / f32, abs=0.06)
  assert ctl != f32  # another seed: other parameters and batches
  assert 'largest |rel. diff|: bfloat16' in out
  assert out.count('s wall') == 3
  saved = {name: json.loads((tmp_path / name / 'config.json').read_text())
           for name in ('float32', 'bfloat16', 'float32_seed1')}
  assert [(c['model']['dtype'], c['seed']) for c in saved.values()] == [
      ('float32', 0), ('bfloat16', 0), ('float32', 1)]
  mixed_precision.main(args)
  again = capsys.readouterr().out
  assert again.count('read again') == 3, again
  assert re.findall(r'^\|.*\|$', again, re.M) == re.findall(
      r'^\|.*\|$', out, re.M)
  # a finished run of another config is not taken for this one
  with pytest.raises(JaxlmError, match=r'float32/config\.json.*optim\.lr'):
    mixed_precision.main([*args, '--config.optim.lr=0.123'])
