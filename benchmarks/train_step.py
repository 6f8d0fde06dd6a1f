r"""Training-step throughput: img/s, step time, peak memory, MFU.

  python benchmarks/train_step.py --variant S/16 S/8 --batch 8 --prompts 98
  python benchmarks/train_step.py --mesh 2,4,1 --batch 16   # any mesh
  python benchmarks/train_step.py --model slpt --variant hrnet_lite
  python benchmarks/train_step.py --model dslpt --variant hrnet resnet34
  python benchmarks/train_step.py --model regression --prompts 68 \
      --image-size 224
  python benchmarks/train_step.py --config configs/slpt_demo.py:dslpt
  python benchmarks/train_step.py --model lensmaster --frozen both \
      --batch 4 --steps 3

`--model` picks a config (`CONFIGS`), `--config` any other (every family
works: the family says whether it trains on anchor subsets); `--variant` is
the ViT variant (TUFA) or the backbone (SLPT/DSLPT/regression, which
predict all `--prompts` points), by default the config's. `--frozen both`
times the config with its `train.frozen` parameters frozen and with none
(`config`: as the config says, `none`: nothing frozen).

Times the same jitted step `jaxlm train` runs (forward of every decoder
layer, L1 loss, backward, AdamW update; donated state) on random input, after
one compile step. Reference on a 2-core CPU: the official PyTorch TUFA S/16
(fp32, batch 8, 98 prompts) trains at 2.6 img/s. On GPUs MFU uses the FLOPs
of XLA's cost analysis of the compiled step and the device's peak
(`--peak-tflops`, defaults for H100/H200 bf16 dense).
"""

from __future__ import annotations

import argparse
import resource
import time

import jax
import jax.numpy as jnp
import numpy as np

from jaxlm.config import load_config
from jaxlm.train import sharding
from jaxlm.train.loop import setup
from jaxlm.train.step import jit_step

LAST = {}  # figures of the latest bench() call, for other scripts
_PEAK_TFLOPS = {  # dense, per device
    ('H100', 'bfloat16'): 989.0, ('H100', 'float32'): 67.0,
    ('H200', 'bfloat16'): 989.0, ('H200', 'float32'): 67.0,
    ('A100', 'bfloat16'): 312.0, ('A100', 'float32'): 19.5,
}


def peak_memory_gib():
  dev = jax.local_devices()[0]
  stats = dev.memory_stats() if dev.platform != 'cpu' else None
  if stats and 'peak_bytes_in_use' in stats:
    return stats['peak_bytes_in_use'] / 2**30, 'device peak'
  rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
  return rss, 'host max RSS'


# --model NAME: the config whose settings are timed (--config takes any)
CONFIGS = {'tufa': 'configs/tufa_vits16_multi.py',
           'slpt': 'configs/slpt_hrnet_lite_wflw.py',
           'dslpt': 'configs/dslpt_hrnet_wflw.py',
           'regression': 'configs/regression_resnet18_300w.py',
           'lensmaster': 'configs/lensmaster_dinov3_wflw.py'}
LAYOUT_OF = {98: 'syn98', 68: 'syn68', 29: 'syn29', 19: 'syn19'}


def bench(variant, batch, prompts, dtype, steps, image_size, peak_tflops,
          mesh_shape=None, model_name='tufa', config=None, frozen=None):
  cfg = load_config(config or CONFIGS[model_name])
  if frozen is not None:  # None: the config's train.frozen
    cfg.train.frozen = tuple(frozen)
  model_name = cfg.model.name
  cfg.model.variant = variant or cfg.model.variant
  cfg.model.dtype = dtype
  cfg.data.image_size = image_size
  from jaxlm import models  # pylint: disable=g-import-not-at-top
  masking = models.family_of(cfg.model).anchor_masking
  # anchor-masking families prompt `prompts` of 98 points; the others
  # predict every point of a `prompts`-point layout
  layout = 'syn98' if masking else LAYOUT_OF[prompts]
  cfg.data.num_anchors = prompts if masking else 0
  cfg.data.train = {'bench': dict(source='synthetic', layout=layout,
                                  size=1, seed=0)}
  exp = setup(cfg)
  total = exp.datasets[0][1]
  table = np.random.default_rng(0).uniform(0.2, 0.8, (total, 2)).astype(
      np.float32)
  init = exp.init_state(table)
  mesh = sharding.make_mesh(dict(zip(sharding.AXES, mesh_shape))
                            if mesh_shape else None)
  state_sh = sharding.state_shardings(jax.eval_shape(init), mesh)
  batch_sh = sharding.batch_sharding(mesh)
  state = jax.jit(init, out_shardings=state_sh)()
  rng = np.random.default_rng(0)
  batch_data = dict(
      image=jnp.asarray(rng.integers(0, 255, (batch, image_size, image_size,
                                              3), np.uint8)),
      point_index=jnp.asarray(np.stack([
          rng.permutation(total)[:prompts] if masking
          else np.arange(prompts) for _ in range(batch)]).astype(np.int32)),
      target=jnp.asarray(rng.uniform(0, 1, (batch, prompts, 2)), jnp.float32),
      weight=jnp.ones((batch, prompts), jnp.float32))
  batch_data = jax.device_put(batch_data, batch_sh)
  step = jit_step(exp.train_step(), state_sh, batch_sh, mesh)
  compiled = step.lower(state, batch_data).compile()
  cost = compiled.cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  flops = float(cost.get('flops', 0.0)) if cost else 0.0
  t0 = time.perf_counter()
  state, m = step(state, batch_data)
  jax.block_until_ready(m)
  compile_s = time.perf_counter() - t0
  times = []
  for _ in range(steps):
    t0 = time.perf_counter()
    state, m = step(state, batch_data)
    jax.block_until_ready(m)
    times.append(time.perf_counter() - t0)
  dt = float(np.median(times))
  LAST.update(step_s=dt, img_per_s=batch / dt, flops=flops)
  mem, mem_kind = peak_memory_gib()
  dev = jax.local_devices()[0]
  frz = tuple(cfg.train.get('frozen', ()))
  line = (f'{model_name} {cfg.model.variant:6s} {dtype:8s} batch {batch:4d} prompts {prompts:3d} '
          + (f'frozen {",".join(frz)} ' if frz else '') +
          f'{image_size}px mesh {"x".join(map(str, mesh.shape.values()))} | '
          f'{batch / dt:9.1f} img/s | step {dt * 1e3:8.1f} '
          f'ms (median of {steps}) | first step {compile_s:5.1f} s | '
          f'{mem:6.2f} GiB {mem_kind}')
  if dev.platform == 'gpu':
    kind = next((k for k in ('H100', 'H200', 'A100') if k in dev.device_kind),
                None)
    peak = peak_tflops or _PEAK_TFLOPS.get((kind, dtype))
    if peak and flops:
      line += f' | {flops / dt / 1e12:6.1f} TFLOP/s, MFU {flops / dt / (peak * 1e12):5.1%}'
  print(line, flush=True)


def main():
  p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  p.add_argument('--model', default='tufa', choices=sorted(CONFIGS))
  p.add_argument('--config', default=None,
                 help='time this config instead of --model\'s')
  p.add_argument('--variant', nargs='+', default=None,
                 help='ViT variant (tufa, default S/16) or backbone (slpt: '
                 'hrnet_lite, dslpt: hrnet; also resnet34/50, vit:<v>)')
  p.add_argument('--batch', type=int, nargs='+', default=[8])
  p.add_argument('--prompts', type=int, default=98)
  p.add_argument('--dtype', default='float32',
                 choices=['float32', 'bfloat16'])
  p.add_argument('--steps', type=int, default=5)
  p.add_argument('--image-size', type=int, default=256)
  p.add_argument('--peak-tflops', type=float, default=None)
  p.add_argument('--mesh', default=None,
                 help='data,fsdp,tensor (default: all devices on data)')
  p.add_argument('--frozen', default='config',
                 choices=['config', 'none', 'both'],
                 help="train.frozen as the config says, nothing frozen, or "
                 "both one after the other")
  a = p.parse_args()
  mesh_shape = tuple(int(v) for v in a.mesh.split(',')) if a.mesh else None
  print(f'jax {jax.__version__} on {jax.local_devices()[0].device_kind} '
        f'x{jax.local_device_count()}', flush=True)
  frozen = {'config': [None], 'none': [()], 'both': [None, ()]}[a.frozen]
  for v in a.variant or [None]:  # None: the config's own variant
    for b in a.batch:
      for f in frozen:
        bench(v, b, a.prompts, a.dtype, a.steps, a.image_size,
              a.peak_tflops, mesh_shape, a.model, a.config, f)


if __name__ == '__main__':
  main()
