r"""The official PyTorch training step, timed beside jaxlm's in one process.

  python benchmarks/official_train_step.py --model dslpt \
      --official-dir /tmp/official/DSLPT --rounds 4 --steps 2

NEEDS THE OFFICIAL SOURCES, which jaxlm neither ships nor installs: a checkout
of the model's official repository (only its Python files and the small
`.npz` shape files are used; no weights are loaded, every model starts from
its own random initialisation):

  tufa   https://github.com/Jiahao-UTS/TUFA           (Prompt.py, Backbone/)
  slpt   https://github.com/Jiahao-UTS/SLPT_Training  (model.py, backbone/,
                                                       Transformer/, Config/)
  dslpt  https://github.com/Jiahao-UTS/DSLPT          (same layout as SLPT)

e.g. `git clone https://github.com/Jiahao-UTS/DSLPT /tmp/official/DSLPT`.
It also needs CPU PyTorch and the official code's imports: `pip install
torch yacs tensorboardX` (torch 2.13.0+cpu was used here). torchvision and
timm are not needed: the few names the official code imports from them (a
ResNet backbone SLPT does not build here, timm's `trunc_normal_`) are
replaced by small stand-ins when the real packages cannot be imported.

Settings are the issue's: fp32, 256 px, batch 8 (`--batch`), 98 points,
forward + backward + optimizer step. The official step is each repository's
own: SLPT and DSLPT as their `tools/train_function.py` (loss 0.2 / 0.3 / 0.5
of the three stages; SLPT's `Alignment_Loss`, DSLPT's Gaussian loss from the
model), TUFA's L1 loss (`Backbone/Loss.py`) over every decoder layer with the
98-point mean-shape prompt (TUFA publishes no training loop); the optimizer
is the repository's (`utils/Optimizer.py`: SLPT Adam, DSLPT AdamW; TUFA
AdamW). The jaxlm side is `benchmarks/train_step.py`'s `StepBench` with the
same family's config (`CONFIGS`). The two alternate: `--rounds` times,
`--steps` official steps then `--steps` jaxlm steps, so load from other
processes hits both alike; reported are the medians, their ratio, and the
CPU seconds per step (process time, which other processes' load does not
inflate; but a busy machine makes torch's waiting threads spin, which
`--torch-threads 1` avoids). `--no-jaxlm` times the official step alone.
`--json PATH` writes the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import types

import numpy as np

# the jaxlm config timed beside each official model
JAXLM = {'tufa': ('tufa', 'S/16'), 'slpt': ('slpt', 'hrnet_lite'),
         'dslpt': ('dslpt', 'hrnet')}


def _stand_ins():
  """Stand-ins for torchvision and timm when they cannot be imported: the
  official SLPT/DSLPT import torchvision only for ResNet backbones and
  transforms, TUFA imports timm only for `trunc_normal_`."""
  import torch  # pylint: disable=g-import-not-at-top
  try:
    import torchvision  # pylint: disable=g-import-not-at-top,unused-import
  except Exception:  # pylint: disable=broad-except
    for name in ('torchvision', 'torchvision.models',
                 'torchvision.models._utils', 'torchvision.transforms'):
      sys.modules[name] = types.ModuleType(name)
    sys.modules['torchvision.models._utils'].IntermediateLayerGetter = None
    sys.modules['torchvision'].models = sys.modules['torchvision.models']
    sys.modules['torchvision'].transforms = sys.modules[
        'torchvision.transforms']
  try:
    import timm.models.layers  # pylint: disable=g-import-not-at-top,unused-import
  except Exception:  # pylint: disable=broad-except
    for name in ('timm', 'timm.models', 'timm.models.layers'):
      sys.modules[name] = types.ModuleType(name)
    sys.modules['timm.models.layers'].trunc_normal_ = torch.nn.init.trunc_normal_


def official_step(model_name: str, official_dir: str, batch: int):
  """(step, describe): `step()` runs one official training step on random
  input (fixed across steps) and returns the loss."""
  import torch  # pylint: disable=g-import-not-at-top
  _stand_ins()
  official_dir = os.path.abspath(official_dir)
  sys.path.insert(0, official_dir)
  os.chdir(official_dir)  # the configs name their .npz files relatively
  torch.manual_seed(0)
  rng = np.random.default_rng(0)
  image = torch.from_numpy(rng.standard_normal((batch, 3, 256, 256)
                                               ).astype(np.float32))
  target = torch.from_numpy(rng.uniform(0.2, 0.8, (batch, 98, 2)
                                        ).astype(np.float32))
  if model_name == 'tufa':
    from Prompt import Face_prompt  # pylint: disable=g-import-not-at-top,import-error
    from Backbone import L1_Loss  # pylint: disable=g-import-not-at-top,import-error
    model = Face_prompt('small')  # ViT-S/16
    prompt = torch.from_numpy(np.load('Prompt/shape_98.npz')['offset'] /
                              256.0).float().unsqueeze(0).repeat(batch, 1, 1)
    loss_fn, mask = L1_Loss(), torch.ones(batch, 1, 98)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def loss_of():
      out = model(image, prompt)  # (B, layers, 98, 2)
      return loss_fn(out, target.unsqueeze(1), mask)
  else:
    from Config import cfg  # pylint: disable=g-import-not-at-top,import-error
    from utils import get_optimizer  # pylint: disable=g-import-not-at-top,import-error
    cfg.defrost()
    cfg.MODEL.PRETRAINED = ''  # random weights
    cfg.freeze()
    if model_name == 'slpt':
      from model import Sparse_alignment_network  # pylint: disable=g-import-not-at-top,import-error
      from backbone import Alignment_Loss  # pylint: disable=g-import-not-at-top,import-error
      model = Sparse_alignment_network(
          cfg.WFLW.NUM_POINT, cfg.MODEL.OUT_DIM, cfg.MODEL.TRAINABLE,
          cfg.MODEL.INTER_LAYER, cfg.MODEL.DILATION, cfg.TRANSFORMER.NHEAD,
          cfg.TRANSFORMER.FEED_DIM, cfg.WFLW.INITIAL_PATH, cfg)
      align = Alignment_Loss(cfg)

      def loss_of():
        out = model(image)
        losses = [align(o, target) for o in out]
        return 0.2 * losses[0] + 0.3 * losses[1] + 0.5 * losses[2]
    else:
      from model import Dynamic_sparse_alignment_network  # pylint: disable=g-import-not-at-top,import-error
      model = Dynamic_sparse_alignment_network(
          cfg.WFLW.NUM_POINT, cfg.MODEL.OUT_DIM, cfg.MODEL.TRAINABLE,
          cfg.MODEL.INTER_LAYER, cfg.TRANSFORMER.NHEAD,
          cfg.TRANSFORMER.FEED_DIM, cfg.WFLW.INITIAL_PATH, cfg)

      def loss_of():
        _, losses = model(image, target, True)
        return 0.2 * losses[0] + 0.3 * losses[1] + 0.5 * losses[2]
    optimizer = get_optimizer(cfg, model)
  model.train()

  def step():
    loss = loss_of()
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return float(loss.detach())

  params = sum(p.numel() for p in model.parameters())
  return step, (f'official {model_name}: {params / 1e6:.2f} M parameters, '
                f'torch {torch.__version__}, {torch.get_num_threads()} '
                f'threads, optimizer {type(optimizer).__name__}')


def timed(fn):
  """(wall seconds, CPU seconds of this process) of one call."""
  w, c = time.perf_counter(), time.process_time()
  fn()
  return time.perf_counter() - w, time.process_time() - c


def main():
  p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  p.add_argument('--model', required=True, choices=sorted(JAXLM))
  p.add_argument('--official-dir', required=True,
                 help='checkout of the model\'s official repository')
  p.add_argument('--batch', type=int, default=8)
  p.add_argument('--rounds', type=int, default=3)
  p.add_argument('--steps', type=int, default=2,
                 help='steps of each side per round')
  p.add_argument('--no-jaxlm', action='store_true')
  p.add_argument('--torch-threads', type=int, default=None,
                 help='torch.set_num_threads (default: torch\'s, the cores)')
  p.add_argument('--json', default=None)
  a = p.parse_args()
  here = os.getcwd()
  if a.torch_threads:
    import torch  # pylint: disable=g-import-not-at-top
    torch.set_num_threads(a.torch_threads)
  step, text = official_step(a.model, a.official_dir, a.batch)
  print(text, flush=True)
  os.chdir(here)
  sides = {'official': lambda: step()}
  if not a.no_jaxlm:
    import jax  # pylint: disable=g-import-not-at-top
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import train_step  # pylint: disable=g-import-not-at-top,import-error
    name, variant = JAXLM[a.model]
    bench = train_step.StepBench(train_step.CONFIGS[name], variant)
    t0 = time.perf_counter()
    compiled = bench.compile(a.batch)
    print(f'jaxlm {name} {variant}: compiled in '
          f'{time.perf_counter() - t0:.1f} s, jax {jax.__version__}',
          flush=True)
    data = bench.batch(a.batch)
    holder = {'state': bench.state}

    def jaxlm_step():
      holder['state'], m = compiled(holder['state'], data)
      jax.block_until_ready(m)
    sides['jaxlm'] = jaxlm_step
  for fn in sides.values():  # warm-up, untimed
    fn()
  times = {k: [] for k in sides}
  for r in range(a.rounds):
    for k, fn in sides.items():
      for _ in range(a.steps):
        times[k].append(timed(fn))
    print(f'round {r + 1}: ' + ', '.join(
        f'{k} {np.median([w for w, _ in v[-a.steps:]]):.3f} s '
        f'({np.median([c for _, c in v[-a.steps:]]):.2f} CPU s)'
        for k, v in times.items()) + ' | load %.2f' % os.getloadavg()[0],
          flush=True)
  rows = {}
  for k, v in times.items():
    wall, cpu = np.median([w for w, _ in v]), np.median([c for _, c in v])
    rows[k] = dict(step_s=wall, img_per_s=a.batch / wall, cpu_s=cpu)
    print(f'{k:8s} {a.batch / wall:6.2f} img/s | step {wall:6.3f} s '
          f'(median of {len(v)}) | {cpu:6.2f} CPU s/step', flush=True)
  load = os.getloadavg()
  out = dict(model=a.model, batch=a.batch, load=load, **rows)
  if 'jaxlm' in rows:
    out['ratio'] = rows['official']['step_s'] / rows['jaxlm']['step_s']
    out['cpu_ratio'] = rows['official']['cpu_s'] / rows['jaxlm']['cpu_s']
    print(f'jaxlm / official: {out["ratio"]:.2f}x wall, '
          f'{out["cpu_ratio"]:.2f}x CPU seconds | load '
          f'{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}', flush=True)
  if a.json:
    with open(a.json, 'w') as f:
      json.dump(out, f, indent=1)


if __name__ == '__main__':
  main()
