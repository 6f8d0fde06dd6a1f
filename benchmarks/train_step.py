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
  python benchmarks/train_step.py --variant S/8 --remat both --steps 2 \
      --json /tmp/s8.json   # with and without rematerialisation

`--model` picks a config (`CONFIGS`), `--config` any other (every family
works: the family says whether it trains on anchor subsets); `--variant` is
the ViT variant (TUFA) or the backbone (SLPT/DSLPT/regression, which
predict all `--prompts` points), by default the config's. `--frozen both`
times the config with its `train.frozen` parameters frozen and with none
(`config`: as the config says, `none`: nothing frozen). `--remat` sets
`model.remat` (`jaxlm/models/remat.py`; `both`: none, then blocks); peak
host RSS is a high-water mark, so compare memory across settings in
separate processes. `--json PATH` also writes every row's figures.

Times the same jitted step `jaxlm train` runs (forward of every decoder
layer, L1 loss, backward, AdamW update; donated state) on random input, after
one compile step. Reference on a 2-core Zen 4 CPU (2026-12-07, quiet): the
official PyTorch TUFA S/16 (fp32, batch 8, 98 prompts) trains at 2.6-2.95
img/s, jaxlm's at 2.8-2.9 (`benchmarks/official_train_step.py`, and
`benchmarks/results/train_step_vs_official_cpu.md` for why fp32 cannot go
much faster there). On GPUs MFU uses the FLOPs
of XLA's cost analysis of the compiled step and the device's peak
(`--peak-tflops`, defaults for H100/H200 bf16 dense). `StepBench` is the
same measurement for other scripts (`benchmarks/gpu_suite.py`): one model's
state made once, then any batch size and remat setting, out-of-memory
reported instead of raised.
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import time

import jax
import numpy as np

from jaxlm.config import load_config
from jaxlm.train import sharding
from jaxlm.train.loop import setup
from jaxlm.train.step import jit_step

LAST = {}  # figures of the latest bench() call, for other scripts
# dense TFLOP/s per device, by a name in `device_kind` (first match):
# datasheet figures; measured bf16 matrix products reach about 80% of them
_PEAK_TFLOPS = {
    ('H100 PCIe', 'bfloat16'): 756.0, ('H100 PCIe', 'float32'): 51.0,
    ('H100 NVL', 'bfloat16'): 835.0, ('H100 NVL', 'float32'): 60.0,
    ('H100', 'bfloat16'): 989.0, ('H100', 'float32'): 67.0,
    ('H200', 'bfloat16'): 989.0, ('H200', 'float32'): 67.0,
    ('A100', 'bfloat16'): 312.0, ('A100', 'float32'): 19.5,
}


def peak_tflops(device_kind: str, dtype: str):
  """Dense peak TFLOP/s of `device_kind` in `dtype`, or None if unknown."""
  for (name, dt), peak in _PEAK_TFLOPS.items():
    if dt == dtype and name in device_kind:
      return peak
  return None


def peak_memory_gib():
  dev = jax.local_devices()[0]
  stats = dev.memory_stats() if dev.platform != 'cpu' else None
  if stats and 'peak_bytes_in_use' in stats:
    return stats['peak_bytes_in_use'] / 2**30, 'device peak'
  rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
  return rss, 'host max RSS'


def is_out_of_memory(error: Exception) -> bool:
  text = str(error)
  return any(s in text for s in ('RESOURCE_EXHAUSTED', 'Out of memory',
                                 'out of memory', 'OOM'))


# --model NAME: the config whose settings are timed (--config takes any)
CONFIGS = {'tufa': 'configs/tufa_vits16_multi.py',
           'slpt': 'configs/slpt_hrnet_lite_wflw.py',
           'dslpt': 'configs/dslpt_hrnet_wflw.py',
           'regression': 'configs/regression_resnet18_300w.py',
           'queries3d': 'configs/queries3d_convnext_multi.py',
           'infinite3d': 'configs/infinite3d_convnext_multi.py',
           'lensmaster': 'configs/lensmaster_dinov3_wflw.py'}
LAYOUT_OF = {98: 'syn98', 68: 'syn68', 29: 'syn29', 19: 'syn19'}


class StepBench:
  """The jitted training step of one config on random input.

  The state is made once (parameters do not depend on `model.remat`);
  `run(batch, remat)` compiles the step for that batch and setting and
  times it. Anchor-masking families prompt `prompts` of 98 points; the
  others predict every point of a `prompts`-point layout (None: the
  config's `data.num_anchors`, or 98 points). `data`, if
  given, replaces the synthetic training dataset (`data.train`, for steps
  fed by the real input pipeline: `compile(..., example=)`).
  `model_overrides` updates the config's `model` section;
  `compiler_options` go to XLA with every compile.
  """

  def __init__(self, config, variant=None, dtype='float32', image_size=None,
               prompts=98, frozen=None, mesh_shape=None,
               model_overrides=None, compiler_options=None, data=None):
    cfg = load_config(config) if isinstance(config, str) else config
    if frozen is not None:  # None: the config's train.frozen
      cfg.train.frozen = tuple(frozen)
    cfg.model.variant = variant or cfg.model.variant
    cfg.model.dtype = dtype
    cfg.model.update(dict(model_overrides or {}))
    if image_size:
      cfg.data.image_size = image_size
    from jaxlm import models  # pylint: disable=g-import-not-at-top
    self.masking = models.family_of(cfg.model).anchor_masking
    if prompts is None:  # the config's anchors, or a 98-point layout
      prompts = (cfg.data.num_anchors or 98) if self.masking else 98
    layout = 'syn98' if self.masking else LAYOUT_OF[prompts]
    cfg.data.num_anchors = prompts if self.masking else 0
    # named as a dataset of the config (model settings may name one: the
    # 3D-query deformer's reference)
    self.dataset = (next(iter(data)) if data else
                    cfg.model.get('deformer_reference') or
                    next(iter(cfg.data.train or {}), 'bench'))
    cfg.data.train = data or {self.dataset: dict(
        source='synthetic', layout=layout, size=1, seed=0)}
    self.config, self.prompts = cfg, prompts
    self.compiler_options = compiler_options
    exp = setup(cfg)
    self.total = exp.datasets[0][1]
    table = np.random.default_rng(0).uniform(0.2, 0.8, (self.total, 2)
                                             ).astype(np.float32)
    init = exp.init_state(table)
    self.mesh = sharding.make_mesh(dict(zip(sharding.AXES, mesh_shape))
                                   if mesh_shape else None)
    self.state_sh = sharding.state_shardings(jax.eval_shape(init), self.mesh)
    self.batch_sh = sharding.batch_sharding(self.mesh)
    self.state = self._init(init)

  def _init(self, init):
    return jax.jit(init, out_shardings=self.state_sh).lower().compile(
        self.compiler_options)()

  def experiment(self, remat='none'):
    cfg = self.config.copy_and_resolve_references()
    cfg.model.remat = remat
    return setup(cfg)

  def batch(self, batch):
    rng = np.random.default_rng(0)
    size, total, prompts = self.config.data.image_size, self.total, \
        self.prompts
    data = dict(
        image=rng.integers(0, 255, (batch, size, size, 3), np.uint8),
        point_index=np.stack([
            rng.permutation(total)[:prompts] if self.masking
            else np.arange(prompts) for _ in range(batch)]).astype(np.int32),
        target=rng.uniform(0, 1, (batch, prompts, 2)).astype(np.float32),
        weight=np.ones((batch, prompts), np.float32))
    return jax.device_put(data, self.batch_sh)

  def compile(self, batch, remat='none', example=None):
    """The compiled step (jax.stages.Compiled) for `batch` random faces,
    or for batches like `example` (a global batch)."""
    step = jit_step(self.experiment(remat).train_step(), self.state_sh,
                    self.batch_sh, self.mesh)
    example = self.batch(batch) if example is None else example
    return step.lower(self.state, example).compile(self.compiler_options)

  def run(self, batch, remat='none', steps=5, peak=None) -> dict:
    """Figures of `steps` timed steps after one untimed one: img_per_s,
    step_s (median), compile_s, flops (XLA's count for one step), tflops,
    mfu (with `peak` TFLOP/s, default the device's), step_gib (XLA's
    arguments + outputs + temporaries of the compiled step), peak_gib and
    mem_kind (device peak so far, or the host's max RSS on CPU); or
    {'oom': message} when the batch does not fit."""
    dtype = self.config.model.dtype
    row = dict(model=self.config.model.name, variant=self.config.model.variant,
               dtype=dtype, batch=batch, prompts=self.prompts,
               image_size=self.config.data.image_size, remat=remat,
               frozen=list(self.config.train.get('frozen', ())),
               mesh='x'.join(map(str, self.mesh.shape.values())))
    t0 = time.perf_counter()
    try:
      compiled = self.compile(batch, remat)
      row['compile_s'] = time.perf_counter() - t0
      data = self.batch(batch)
      state, m = compiled(self.state, data)  # the donated state is spent
      jax.block_until_ready(m)
      times = []
      for _ in range(steps):
        t1 = time.perf_counter()
        state, m = compiled(state, data)
        jax.block_until_ready(m)
        times.append(time.perf_counter() - t1)
      self.state = state
    except Exception as e:  # pylint: disable=broad-except
      if not is_out_of_memory(e):
        raise
      row['oom'] = str(e).split('\n')[0][:200]
      self._recover()
      return row
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    flops = float(cost.get('flops', 0.0)) if cost else 0.0
    dt = float(np.median(times))
    mem = compiled.memory_analysis()
    step_bytes = (mem.argument_size_in_bytes + mem.output_size_in_bytes +
                  mem.temp_size_in_bytes - mem.alias_size_in_bytes
                  ) if mem is not None else 0
    peak_mem, mem_kind = peak_memory_gib()
    dev = jax.local_devices()[0]
    peak = peak or peak_tflops(dev.device_kind, dtype)
    row.update(step_s=dt, img_per_s=batch / dt, flops=flops,
               tflops=flops / dt / 1e12 if flops else None,
               mfu=flops / dt / (peak * 1e12) if flops and peak and
               dev.platform == 'gpu' else None,
               step_gib=step_bytes / 2**30, peak_gib=peak_mem,
               mem_kind=mem_kind, steps=steps)
    return row

  def _recover(self):
    """After an out-of-memory step: a fresh state if the donated one went."""
    gc.collect()
    if any(getattr(x, 'is_deleted', lambda: False)()
           for x in jax.tree_util.tree_leaves(self.state)):
      exp = self.experiment()
      table = np.random.default_rng(0).uniform(0.2, 0.8, (self.total, 2)
                                               ).astype(np.float32)
      self.state = self._init(exp.init_state(table))


def describe(row) -> str:
  """One printed line of a `StepBench.run` row."""
  head = (f'{row["model"]} {row["variant"]:6s} {row["dtype"]:8s} batch '
          f'{row["batch"]:4d} prompts {row["prompts"]:3d} ' +
          (f'frozen {",".join(row["frozen"])} ' if row['frozen'] else '') +
          (f'remat {row["remat"]} ' if row['remat'] != 'none' else '') +
          f'{row["image_size"]}px mesh {row["mesh"]} | ')
  if 'oom' in row:
    return head + f'out of memory ({row["oom"]})'
  line = head + (
      f'{row["img_per_s"]:9.1f} img/s | step {row["step_s"] * 1e3:8.1f} '
      f'ms (median of {row["steps"]}) | compile {row["compile_s"]:5.1f} s | '
      f'{row["peak_gib"]:6.2f} GiB {row["mem_kind"]} | step '
      f'{row["step_gib"]:.2f} GiB (XLA)')
  if row['mfu'] is not None:
    line += f' | {row["tflops"]:6.1f} TFLOP/s, MFU {row["mfu"]:5.1%}'
  return line


def bench(variant, batch, prompts, dtype, steps, image_size, peak_tflops,
          mesh_shape=None, model_name='tufa', config=None, frozen=None,
          remat='none'):
  """Times one setting and prints its line (see `StepBench.run`)."""
  b = StepBench(config or CONFIGS[model_name], variant, dtype, image_size,
                prompts, frozen, mesh_shape)
  row = b.run(batch, remat, steps, peak_tflops)
  if 'oom' not in row:
    LAST.update(step_s=row['step_s'], img_per_s=row['img_per_s'],
                flops=row['flops'])
  print(describe(row), flush=True)
  return row


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
  p.add_argument('--remat', nargs='+', default=['none'],
                 choices=['none', 'blocks', 'dots', 'both'],
                 help="model.remat (jaxlm/models/remat.py); 'both': none, "
                 "then blocks")
  p.add_argument('--json', default=None,
                 help='also write every row\'s figures to this JSON file')
  a = p.parse_args()
  mesh_shape = tuple(int(v) for v in a.mesh.split(',')) if a.mesh else None
  print(f'jax {jax.__version__} on {jax.local_devices()[0].device_kind} '
        f'x{jax.local_device_count()}', flush=True)
  frozen = {'config': [None], 'none': [()], 'both': [None, ()]}[a.frozen]
  remats = [r for x in a.remat for r in
            (('none', 'blocks') if x == 'both' else (x,))]
  rows = []
  for v in a.variant or [None]:  # None: the config's own variant
    for f in frozen:
      b = StepBench(a.config or CONFIGS[a.model], v, a.dtype, a.image_size,
                    a.prompts, f, mesh_shape)
      for r in remats:
        for n in a.batch:
          row = b.run(n, r, a.steps, a.peak_tflops)
          print(describe(row), flush=True)
          rows.append(row)
  if a.json:
    with open(a.json, 'w') as f:
      json.dump(rows, f, indent=1)


if __name__ == '__main__':
  main()
