r"""One GPU suite: training, evaluation and end-to-end throughput of every
model family on one device, in one process, written to
benchmarks/results/<date>-<device>.md (and .json beside it).

  bash benchmarks/gpu_suite.sh                 # one H100/H200: <= 8 minutes
  bash benchmarks/gpu_suite.sh --quick         # about half of that
  bash benchmarks/gpu_suite.sh --batch tufa_s16=512 --xla-flags \
      '--xla_gpu_enable_latency_hiding_scheduler=true'
  python benchmarks/gpu_suite.py --dry-run --out /tmp/suite   # CPU, tiny

Parts, each with a time cap (`--budget` seconds in all, shared as
`SHARES` says; a part starts no measurement it has no time left for, and
the time each took is printed and written):

  training: per model (`MODELS`) and `model.remat` setting, the jitted
    step on random input (`train_step.StepBench`) at batch sizes doubling
    from the model's start (or `--batch`) until out of memory, its cap or
    its share of the time; the 'blocks' rows start at the largest batch
    that fitted without remat (the same batch side by side) and go on
    doubling. img/s, step time, MFU (XLA's FLOP count of the compiled step
    over the device's dense bf16 peak), the step's memory by XLA and the
    device's peak so far.
  evaluation: per model, the jitted forward (`inference.make_predict`) on
    device-resident images, and through host memory (NumPy in and out, as
    `Predictor.predict_crops`).
  end to end: fake WFLW files built by the TFDS builder
    (`input_pipeline.build_fake`), decoded and augmented by the grain
    pipeline `jaxlm train` uses (`--workers` processes), feeding TUFA
    S/16's step: pipeline alone, step alone and both (does input keep up?).

bf16 (`model.dtype`) by default on GPUs. `--dry-run` runs every part on the
CPU with tiny variants of each model (batch 2, one step, XLA's quickest
compile) and writes the same file to `--out`; `--models` picks models.
Targets of the issue (one H100, bf16) are printed next to the figures.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# name -> config, ViT variant (None: the config's), prompts (None: the
# config's data.num_anchors; non-masking families: the layout's points),
# first batch and largest batch on a GPU, and the settings of its tiny
# variant (--dry-run, at `tiny_size` px, default 64)
_TINY_VIT = dict(variant='Ti/16:depth=1', decoder_layers=1, decoder_mlp=64,
                 head_hidden=32)
_TINY_SLPT = dict(variant='vit:Ti/16:depth=1', width=32, num_heads=4,
                  num_layers=1, mlp_dim=32, half_sizes=(0.125,))
MODELS = {
    'tufa_s16': dict(config='configs/tufa_vits16_multi.py', variant='S/16',
                     batch=128, cap=2048, tiny=_TINY_VIT),
    'tufa_s8': dict(config='configs/tufa_vits16_multi.py', variant='S/8',
                    batch=64, cap=1024, tiny=_TINY_VIT),
    'slpt': dict(config='configs/slpt_hrnet_lite_wflw.py', prompts=98,
                 batch=64, cap=1024, tiny=_TINY_SLPT),
    'dslpt': dict(config='configs/dslpt_hrnet_wflw.py', prompts=98,
                  batch=64, cap=1024, tiny=_TINY_SLPT),
    'regression': dict(config='configs/regression_resnet18_300w.py',
                       prompts=68, batch=256, cap=4096, tiny={},
                       tiny_size=32),
    'queries3d': dict(config='configs/queries3d_convnext_multi.py',
                      batch=128, cap=2048,
                      tiny=dict(variant='tiny:depths=1-1-1-1:'
                                'dims=16-32-64-128', predictor_width=32)),
    'infinite3d': dict(config='configs/infinite3d_convnext_multi.py',
                       batch=64, cap=1024,
                       tiny=dict(crop_size=32, stn='none',
                                 variant='tiny:depths=1-1-1-1:'
                                 'dims=16-32-64-128', predictor_width=32)),
    'lensmaster': dict(config='configs/lensmaster_dinov3_wflw.py',
                       prompts=98, batch=32, cap=512,
                       tiny=dict(backbone_input=64, width=32, stages=1,
                                 blocks_per_stage=1, num_heads=4,
                                 variant=('Ti/16:depth=1:layerscale=1:'
                                          'registers=4:rope=100:eps=5'))),
}
# the goals on one H100 in bf16, img/s
TARGETS = {'train': 6000.0, 'end_to_end': 5000.0, 'eval': 20000.0}
# shares of --budget: the parts, and what is left for starting up
SHARES = {'training': 0.55, 'evaluation': 0.12, 'end_to_end': 0.23}
# XLA:CPU's quickest compile (dry runs: the numbers are the same)
QUICK_CPU_COMPILE = {'xla_backend_optimization_level': 0,
                     'xla_cpu_use_fusion_emitters': False}
SECTIONS = ('## Setup', '## Time budget', '## Training',
            '## Evaluation', '## End to end', '## Targets')


def parse_args(argv=None):
  p = argparse.ArgumentParser(
      description=__doc__.split('\n')[0],
      formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
  p.add_argument('--dry-run', '--tiny', dest='dry_run', action='store_true',
                 help='every part on the CPU with tiny variants, in seconds')
  p.add_argument('--quick', action='store_true',
                 help='half the budget, no doubling beyond one step')
  p.add_argument('--out', default=str(ROOT / 'benchmarks' / 'results'),
                 help='folder of the results file')
  p.add_argument('--models', default=','.join(MODELS),
                 help=f'comma-separated, of {", ".join(MODELS)}')
  p.add_argument('--batch', default='',
                 help="first training batch: N for all, or name=N,...")
  p.add_argument('--eval-batch', type=int, default=0,
                 help='evaluation batch (default 1024; dry run 2)')
  p.add_argument('--remat', default='none,blocks',
                 help='model.remat settings to train with')
  p.add_argument('--dtype', default=None, choices=['float32', 'bfloat16'],
                 help='model.dtype (default: bfloat16 on GPUs)')
  p.add_argument('--steps', type=int, default=0,
                 help='timed steps per measurement (default 10; dry run 1)')
  p.add_argument('--budget', type=float, default=0,
                 help='seconds for the parts (default 420, quick 200)')
  p.add_argument('--workers', type=int, default=-1,
                 help='grain worker processes end to end (default: CPUs - 2)')
  p.add_argument('--faces', type=int, default=0,
                 help='fake faces to build for end to end (default 512)')
  p.add_argument('--xla-flags', default='',
                 help='appended to XLA_FLAGS before JAX starts')
  p.add_argument('--peak-tflops', type=float, default=None,
                 help='dense peak of the device (default: known GPUs)')
  a = p.parse_args(argv)
  a.models = [m for m in a.models.split(',') if m]
  unknown = [m for m in a.models if m not in MODELS]
  if unknown:
    p.error(f'unknown model {unknown[0]!r} (known: {", ".join(MODELS)})')
  a.remat = [r for r in a.remat.split(',') if r]
  first = {}
  for item in filter(None, a.batch.split(',')):
    name, _, n = item.rpartition('=')
    for m in ([name] if name else MODELS):
      first[m] = int(n)
  a.batch = first
  tiny = a.dry_run
  a.eval_batch = a.eval_batch or (2 if tiny else 1024)
  a.steps = a.steps or (1 if tiny else 10)
  # a dry run is not meant to hit the caps: every model, every part
  a.budget = a.budget or (600 if tiny else 200 if a.quick else 420)
  a.faces = a.faces or (8 if tiny else 512)
  return a


class Report:
  """The results file, rewritten after every measurement (a suite cut off
  still leaves what it measured)."""

  def __init__(self, path: Path, header: list[str]):
    self.path, self.header = path, header
    self.parts, self.train, self.eval, self.e2e = [], [], [], {}
    self.targets, self.notes = [], []

  def write(self):
    lines = list(self.header)
    lines += ['', '## Time budget', '',
              '| part | cap (s) | took (s) | note |', '|---|---|---|---|']
    lines += [f'| {p} | {cap:.0f} | {took:.1f} | {note} |'
              for p, cap, took, note in self.parts]
    lines += [''] + [f'- {n}' for n in self.notes] if self.notes else []
    lines += ['', '## Training', '',
              'Jitted step (forward, loss, backward, optimizer update; '
              'donated state) on random input. MFU: XLA\'s FLOP count of '
              'the step over the dense peak; step GiB: XLA\'s arguments + '
              'outputs + temporaries of the compiled step; peak GiB: the '
              'device\'s peak so far (on a CPU the host\'s max RSS).', '',
              '| model | variant | remat | batch | img/s | step ms | '
              'TFLOP/s | MFU | step GiB | peak GiB | compile s |',
              '|---|---|---|---|---|---|---|---|---|---|---|']
    for r in self.train:
      if 'oom' in r:
        lines.append(f'| {r["label"]} | {r["variant"]} | {r["remat"]} | '
                     f'{r["batch"]} | out of memory | | | | | | |')
        continue
      lines.append(
          f'| {r["label"]} | {r["variant"]} | {r["remat"]} | {r["batch"]} | '
          f'{r["img_per_s"]:.1f} | {r["step_s"] * 1e3:.2f} | '
          f'{_fmt(r["tflops"], "{:.1f}")} | {_fmt(r["mfu"], "{:.1%}")} | '
          f'{r["step_gib"]:.2f} | {r["peak_gib"]:.2f} | '
          f'{r["compile_s"]:.1f} |')
    lines += ['', '## Evaluation', '',
              'Jitted forward (`inference.make_predict`): images already on '
              'the device, and through host memory (NumPy in and out).', '',
              '| model | variant | batch | img/s (device) | ms/batch | '
              'img/s (host in/out) |', '|---|---|---|---|---|---|']
    for r in self.eval:
      if 'oom' in r:
        lines.append(f'| {r["label"]} | {r["variant"]} | {r["batch"]} | '
                     f'out of memory | | |')
      else:
        lines.append(f'| {r["label"]} | {r["variant"]} | {r["batch"]} | '
                     f'{r["img_per_s"]:.1f} | {r["batch_s"] * 1e3:.2f} | '
                     f'{r["host_img_per_s"]:.1f} |')
    lines += ['', '## End to end', '']
    e = self.e2e
    if e.get('skipped'):
      lines.append(f'Not measured: {e["skipped"]}')
    elif e:
      lines += [
          f'TUFA {e["variant"]}, batch {e["batch"]}, {e["faces"]} fake WFLW '
          f'faces ({e["photo"]} px photos) built by the TFDS builder in '
          f'{e["build_s"]:.1f} s, grain with {e["workers"]} worker '
          f'processes on {os.cpu_count()} CPUs.', '',
          '| what | img/s |', '|---|---|',
          f'| input pipeline alone | {e["pipeline_img_per_s"]:.1f} |',
          f'| training step alone (same batch over and over) | '
          f'{e["step_img_per_s"]:.1f} |',
          f'| end to end (pipeline feeding the step) | '
          f'{e["img_per_s"]:.1f} |', '',
          f'Input keeps up: {"yes" if e["keeps_up"] else "no"} (end to end '
          f'{e["img_per_s"] / e["step_img_per_s"]:.0%} of the step alone).']
    lines += ['', '## Targets', '',
              'The issue\'s goals for one H100 in bf16.', '',
              '| what | target img/s | measured img/s | met |',
              '|---|---|---|---|']
    lines += [f'| {w} | {t:,.0f} | {_fmt(m, "{:,.0f}")} | '
              f'{"n/a" if m is None else "yes" if m >= t else "no"} |'
              for w, t, m in self.targets]
    self.path.parent.mkdir(parents=True, exist_ok=True)
    self.path.write_text('\n'.join(lines) + '\n')
    self.path.with_suffix('.json').write_text(json.dumps(dict(
        train=self.train, eval=self.eval, end_to_end=self.e2e,
        parts=self.parts, targets=self.targets), indent=1, default=str))


def _fmt(value, spec):
  return 'n/a' if value is None else spec.format(value)


def device_name(dev) -> str:
  """'NVIDIA H100 80GB HBM3' -> 'nvidia-h100-80gb-hbm3'."""
  kind = dev.device_kind if dev.platform != 'cpu' else 'cpu'
  return re.sub(r'[^a-z0-9]+', '-', kind.lower()).strip('-') or 'device'


class Clock:
  """A part's time cap: `left()` seconds until its deadline."""

  def __init__(self, cap: float):
    self.cap, self.t0 = cap, time.perf_counter()

  def took(self) -> float:
    return time.perf_counter() - self.t0

  def left(self) -> float:
    return self.cap - self.took()


def train_model(name, spec, a, report, clock, share, opts):
  """Training rows of one model; returns its StepBench and the largest
  batch that fitted (None if none did)."""
  import train_step  # pylint: disable=g-import-not-at-top
  deadline = time.perf_counter() + share
  bench = train_step.StepBench(
      str(ROOT / spec['config']), None if a.dry_run else spec.get('variant'),
      a.dtype, spec.get('tiny_size', 64) if a.dry_run else None,
      spec.get('prompts'),
      model_overrides=spec['tiny'] if a.dry_run else None,
      compiler_options=opts)
  deadline = min(deadline, clock.t0 + clock.cap)
  cap = 2 if a.dry_run else spec['cap']
  # a dry run exercises the remat rows with the first model only
  remats = a.remat[:1] if a.dry_run and name != a.models[0] else a.remat
  fitted, spent = {}, 0.0
  for remat in remats:
    batch = (fitted.get('none') or a.batch.get(name) or
             (2 if a.dry_run else spec['batch']))
    if spent and time.perf_counter() + spent > deadline:
      report.notes.append(f'{name}: remat {remat} not measured (time cap)')
      break
    while True:
      t0 = time.perf_counter()
      row = dict(bench.run(batch, remat, a.steps, a.peak_tflops), label=name)
      print(train_step.describe(row), flush=True)
      report.train.append(row)
      report.write()
      spent = time.perf_counter() - t0
      if 'oom' in row:
        break
      fitted[remat] = batch
      if a.quick or 2 * batch > cap:
        break
      # the next doubles the batch: about twice this one's time
      if time.perf_counter() + 2 * spent > deadline:
        report.notes.append(f'{name}: remat {remat} batch {2 * batch} not '
                            f'measured (time cap)')
        break
      batch *= 2
  return bench, fitted.get('none') or fitted.get(remats[0])


def eval_model(name, bench, a, report, opts):
  """Evaluation row of one model (the batch halved on out of memory)."""
  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  import train_step  # pylint: disable=g-import-not-at-top
  from jaxlm import inference  # pylint: disable=g-import-not-at-top
  exp = bench.experiment()
  variables = bench.state.variables()
  prompts = inference.dataset_prompts(exp.model, variables, bench.dataset)
  predict = jax.jit(inference.make_predict(exp.model, exp.family))
  size = bench.config.data.image_size
  batch = a.eval_batch
  while True:
    row = dict(label=name, variant=bench.config.model.variant, batch=batch)
    try:
      host = np.random.default_rng(0).integers(0, 255, (batch, size, size, 3),
                                               np.uint8)
      images = jax.device_put(host, bench.batch_sh)
      compiled = predict.lower(variables, images, prompts).compile(opts)
      jax.block_until_ready(compiled(variables, images, prompts))
      t0 = time.perf_counter()
      for _ in range(a.steps):
        out = compiled(variables, images, prompts)
      jax.block_until_ready(out)
      dt = (time.perf_counter() - t0) / a.steps
      t0 = time.perf_counter()
      for _ in range(a.steps):
        jax.device_get(compiled(variables, jax.device_put(host,
                                                          bench.batch_sh),
                                prompts))
      host_dt = (time.perf_counter() - t0) / a.steps
    except Exception as e:  # pylint: disable=broad-except
      if not train_step.is_out_of_memory(e) or batch <= 8:
        raise
      report.eval.append(dict(row, oom=str(e).split('\n')[0][:200]))
      batch //= 2
      continue
    row.update(img_per_s=batch / dt, batch_s=dt, host_img_per_s=batch /
               host_dt)
    print(f'eval {name} {row["variant"]} batch {batch}: '
          f'{row["img_per_s"]:.1f} img/s on the device, '
          f'{row["host_img_per_s"]:.1f} img/s with host transfers',
          flush=True)
    report.eval.append(row)
    report.write()
    return row


def end_to_end(a, batch, report, clock, opts):
  """TUFA S/16 fed by the real input pipeline (see the module docstring)."""
  import jax  # pylint: disable=g-import-not-at-top
  try:
    import grain  # pylint: disable=g-import-not-at-top,unused-import
    import tensorflow_datasets  # pylint: disable=g-import-not-at-top,unused-import
  except ImportError as e:
    report.e2e = dict(skipped=f'{e} (carry the wheels of '
                      f'benchmarks/gpu_wheels.sh)')
    return
  import input_pipeline  # pylint: disable=g-import-not-at-top
  import train_step  # pylint: disable=g-import-not-at-top
  from jaxlm.config import load_config  # pylint: disable=g-import-not-at-top
  from jaxlm.configs.common import tfds  # pylint: disable=g-import-not-at-top
  from jaxlm.data import pipeline  # pylint: disable=g-import-not-at-top
  from jaxlm.models.semantic_alignment import point_offsets  # pylint: disable=g-import-not-at-top
  from jaxlm.train import sharding  # pylint: disable=g-import-not-at-top
  spec = MODELS['tufa_s16']
  workers = a.workers if a.workers >= 0 else (
      0 if a.dry_run else max(1, (os.cpu_count() or 2) - 2))
  photo = 96 if a.dry_run else 400
  with tempfile.TemporaryDirectory() as tmp:
    t0 = time.perf_counter()
    data_dir = input_pipeline.build_fake(tmp, a.faces, photo)
    build_s = time.perf_counter() - t0
    cfg = load_config(str(ROOT / spec['config']))
    cfg.data.data_dir = data_dir
    bench = train_step.StepBench(
        cfg, None if a.dry_run else spec['variant'], a.dtype,
        64 if a.dry_run else None, None,
        model_overrides=spec['tiny'] if a.dry_run else None,
        compiler_options=opts,
        data={'wflw': tfds('wflw', 'wflw98', 'train')})
    exp = bench.experiment()
    c = bench.config
    # grain's worker processes must not start a GPU backend of their own
    # (JAX preallocates most of the device's memory): this process's
    # backend is up already and keeps its platform
    os.environ['JAX_PLATFORMS'] = 'cpu'
    os.environ['XLA_PYTHON_CLIENT_PREALLOCATE'] = 'false'
    it = iter(pipeline.train_dataset(
        exp.specs, point_offsets(exp.datasets),
        num_anchors=c.data.num_anchors, image_size=c.data.image_size,
        batch_size=batch, seed=0, pad_anchors=exp.family.pad_anchors,
        worker_count=workers, read_threads=max(1, c.data.threads),
        augment=pipeline.augment_config(c.data.get('augment'))))
    first = next(it)  # workers started
    # time-boxed: each stage runs at most `n` batches
    n = max(2, a.steps * (1 if a.dry_run else 3))
    t0 = time.perf_counter()
    for _ in range(n):
      next(it)
    pipe_s = (time.perf_counter() - t0) / n
    example = sharding.global_batch(first, bench.batch_sh)
    compiled = bench.compile(batch, example=example)
    state, m = compiled(bench.state, example)
    jax.block_until_ready(m)
    t0 = time.perf_counter()
    for _ in range(n):
      state, m = compiled(state, example)
    jax.block_until_ready(m)
    step_s = (time.perf_counter() - t0) / n
    t0 = time.perf_counter()
    for _ in range(n):  # as `jaxlm train`: no wait between steps
      state, m = compiled(state, sharding.global_batch(next(it),
                                                       bench.batch_sh))
    jax.block_until_ready(m)
    e2e_s = (time.perf_counter() - t0) / n
  report.e2e = dict(
      variant=c.model.variant, batch=batch, faces=a.faces, photo=photo,
      build_s=build_s, workers=workers, pipeline_img_per_s=batch / pipe_s,
      step_img_per_s=batch / step_s, img_per_s=batch / e2e_s,
      keeps_up=e2e_s <= 1.1 * step_s, batches=n)
  print(f'end to end: pipeline {batch / pipe_s:.1f} img/s, step '
        f'{batch / step_s:.1f} img/s, both {batch / e2e_s:.1f} img/s '
        f'(clock: {clock.took():.1f} of {clock.cap:.0f} s)', flush=True)


def _ensure_configs_package():
  """`jaxlm.configs` (the configs/ folder, an installed package) when jaxlm
  runs from a source tree that pip did not install."""
  try:
    import jaxlm.configs  # pylint: disable=g-import-not-at-top,unused-import
  except ImportError:
    import importlib.util  # pylint: disable=g-import-not-at-top
    spec = importlib.util.spec_from_file_location(
        'jaxlm.configs', ROOT / 'configs' / '__init__.py',
        submodule_search_locations=[str(ROOT / 'configs')])
    module = importlib.util.module_from_spec(spec)
    sys.modules['jaxlm.configs'] = module
    spec.loader.exec_module(module)


def main(argv=None) -> Path:
  """Runs the suite; returns the results file."""
  a = parse_args(argv)
  started = time.perf_counter()
  if a.xla_flags:  # before JAX starts its backends
    os.environ['XLA_FLAGS'] = (os.environ.get('XLA_FLAGS', '') + ' ' +
                               a.xla_flags).strip()
  if a.dry_run:
    os.environ.setdefault('JAX_PLATFORMS', 'cpu')
  sys.path.insert(0, str(ROOT / 'benchmarks'))
  import jax  # pylint: disable=g-import-not-at-top
  _ensure_configs_package()
  dev = jax.local_devices()[0]
  a.dtype = a.dtype or ('bfloat16' if dev.platform == 'gpu' else 'float32')
  opts = QUICK_CPU_COMPILE if dev.platform == 'cpu' and a.dry_run else None
  day = datetime.date.today().isoformat()
  path = Path(a.out) / f'{day}-{device_name(dev)}.md'
  cmd = ' '.join(['benchmarks/gpu_suite.py'] + list(argv if argv is not None
                                                    else sys.argv[1:]))
  header = [
      f'# GPU suite: {dev.device_kind} ({day})', '', '## Setup', '',
      f'- command: `{cmd}`',
      f'- device: {dev.device_kind} x{jax.local_device_count()} '
      f'({dev.platform}); jax {jax.__version__}; {os.cpu_count()} CPUs',
      f'- dtype {a.dtype}; remat {", ".join(a.remat)}; '
      f'{a.steps} timed steps per measurement; budget {a.budget:.0f} s' +
      ('; dry run: tiny variants at 64 px' if a.dry_run else '') +
      ('; quick' if a.quick else ''),
      f'- XLA_FLAGS: `{os.environ.get("XLA_FLAGS", "")}`']
  report = Report(path, header)
  print(f'{dev.device_kind}: results to {path}', flush=True)

  def part(name, fn):
    clock = Clock(SHARES[name] * a.budget)
    note = ''
    try:
      note = fn(clock) or ''
    except Exception as e:  # pylint: disable=broad-except
      note = f'failed: {type(e).__name__}: {str(e).splitlines()[0][:160]}'
      print(f'{name} {note}', flush=True)
      if a.dry_run:
        raise
    report.parts.append((name, clock.cap, clock.took(), note))
    print(f'== {name}: {clock.took():.1f} s of {clock.cap:.0f} s', flush=True)
    report.write()

  benches, fitted = {}, {}

  def training(clock):
    for i, name in enumerate(a.models):
      share = clock.left() / (len(a.models) - i)
      if share <= 0:
        return f'time cap: {", ".join(a.models[i:])} not measured'
      benches[name], fitted[name] = train_model(
          name, MODELS[name], a, report, clock, share, opts)
    return ''

  def evaluation(clock):
    for name in a.models:
      if clock.left() <= 0:
        return 'time cap reached'
      if name in benches:
        eval_model(name, benches[name], a, report, opts)
    return ''

  def e2e(clock):
    batch = fitted.get('tufa_s16') or (2 if a.dry_run else 256)
    benches.clear()  # their states leave the device
    end_to_end(a, batch, report, clock, opts)
    return report.e2e.get('skipped', '')

  part('training', training)
  part('evaluation', evaluation)
  part('end_to_end', e2e)
  best = lambda rows: max((r['img_per_s'] for r in rows
                           if r.get('label') == 'tufa_s16' and 'oom' not in r),
                          default=None)
  report.targets = [
      ('TUFA S/16 training', TARGETS['train'], best(report.train)),
      ('TUFA S/16 end to end', TARGETS['end_to_end'],
       report.e2e.get('img_per_s')),
      ('TUFA S/16 evaluation', TARGETS['eval'], best(report.eval))]
  report.parts.append(('all (with start-up)', a.budget,
                       time.perf_counter() - started, ''))
  report.write()
  print('\n'.join(f'{w}: {_fmt(m, "{:,.0f}")} img/s (target {t:,.0f})'
                  for w, t, m in report.targets))
  print(f'wrote {path}', flush=True)
  return path


if __name__ == '__main__':
  main()
