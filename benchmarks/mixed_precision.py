r"""bf16 mixed precision vs float32: the same short run twice, loss curves
side by side (any family: `model.dtype`; parameters stay float32).

  python benchmarks/mixed_precision.py --config configs/lensmaster_demo.py \
      --steps 200 --config.train.log_every=20

Both runs start from the same initial parameters and see the same batches
(same seed); only the compute dtype differs. Prints the logged loss of each
run, their relative difference, and each run's img/s and wall time.
Run folders go to a temporary directory unless `--workdir` is given.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from jaxlm.config import apply_overrides, load_config, parse_override_args
from jaxlm.train.loop import train


def run(config_spec, overrides, dtype, steps, workdir):
  c = load_config(config_spec)
  apply_overrides(c, overrides)
  c.model.dtype = dtype
  c.train.steps = steps
  c.train.checkpoint_every = steps
  t0 = time.time()
  train(c, workdir, progress=False)
  wall = time.time() - t0
  lines = [json.loads(l) for l in
           (Path(workdir) / 'metrics.jsonl').read_text().splitlines()]
  return lines, wall


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  p.add_argument('--config', required=True)
  p.add_argument('--steps', type=int, default=200)
  p.add_argument('--workdir', default=None,
                 help='parent folder of the float32/ and bfloat16/ runs')
  a, rest = p.parse_known_args(argv)
  overrides = parse_override_args(rest)
  parent = Path(a.workdir or tempfile.mkdtemp(prefix='jaxlm-mp-'))
  curves = {}
  for dtype in ('float32', 'bfloat16'):
    curves[dtype] = run(a.config, overrides, dtype, a.steps, parent / dtype)
  (f32, t32), (b16, t16) = curves['float32'], curves['bfloat16']
  print(f'## {a.config}: {a.steps} steps, float32 vs bfloat16 compute\n')
  print('| step | loss float32 | loss bfloat16 | rel. diff |')
  print('|---|---|---|---|')
  for x, y in zip(f32, b16):
    print(f'| {x["step"]} | {x["loss"]:.4f} | {y["loss"]:.4f} | '
          f'{(y["loss"] - x["loss"]) / abs(x["loss"]):+.1%} |')
  ips = lambda ls: sum(l.get('img_per_s', 0) for l in ls[1:]) / max(
      len(ls) - 1, 1)
  print(f'\nfloat32: {t32:.0f} s wall, {ips(f32):.1f} img/s; bfloat16: '
        f'{t16:.0f} s wall, {ips(b16):.1f} img/s (runs in {parent})')


if __name__ == '__main__':
  main()
