"""The training loop: progress, logging, checkpoints, automatic resume."""

from __future__ import annotations

import json
import logging
import signal
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import tqdm

from jaxlm import layouts, models
from jaxlm.config import to_json, validate
from jaxlm.data import pipeline
from jaxlm.errors import JaxlmError
from jaxlm.models.semantic_alignment import point_offsets, validate_mean_shapes
from jaxlm.train import checkpoint as ckpt_lib
from jaxlm.train import sharding
from jaxlm.train.checkpoint import check_variables
from jaxlm.train.state import create_state, make_optimizer
from jaxlm.train.step import make_train_step

log = logging.getLogger('jaxlm')


class MetricWriter:
  """Scalars to TensorBoard event files and to `metrics.jsonl`."""

  def __init__(self, workdir, enabled: bool = True):
    self.enabled = enabled
    if not enabled:  # only the primary process writes
      return
    from tensorboardX import SummaryWriter
    self.tb = SummaryWriter(str(Path(workdir) / 'tb'))
    self.jsonl = open(Path(workdir) / 'metrics.jsonl', 'a')

  def write(self, step: int, scalars: dict):
    if not self.enabled:
      return
    for k, v in scalars.items():
      self.tb.add_scalar(k, float(v), step)
    self.jsonl.write(json.dumps({'step': step, **{k: float(v) for k, v in
                                                  scalars.items()}}) + '\n')
    self.jsonl.flush()

  def close(self):
    if not self.enabled:
      return
    self.tb.close()
    self.jsonl.close()


def setup(config):
  """Model, datasets and optimizer of a config (shared by train/benchmarks)."""
  validate(config)
  if 'init' in config and not (config.init.get('encoder', '') or
                               config.init.get('checkpoint', '')):
    log.warning('init.encoder is empty: the encoder starts from random '
                'weights, not DINO')
  size = config.data.image_size
  specs = pipeline.dataset_specs(config.data.train, size,
                                 config.data.get('data_dir', ''))
  datasets = tuple((s.name, s.num_points) for s in specs)
  model = models.build(config.model, datasets)
  if config.model.name in ('slpt', 'dslpt') and config.data.num_anchors:
    raise JaxlmError(f'config key data.num_anchors: {config.model.name} '
                     f'predicts every landmark; set it to 0 (all points, in '
                     f'order), not {config.data.num_anchors}')
  tx, schedule = make_optimizer(config.optim, config.train.steps)
  return model, specs, datasets, tx, schedule


def eye_corners(specs):
  """Outer eye corners of the first training layout (SLPT's normaliser)."""
  return tuple(layouts.get(specs[0].layout).outer_eye_corners)


def _place_like(new, current):
  """`new` arrays with the dtypes and shardings of the `current` tree."""
  return jax.tree_util.tree_map(
      lambda n, c: jax.device_put(jnp.asarray(n, c.dtype), c.sharding),
      new, current)


def load_encoder_init(path, variant: str, current):
  """Converted encoder params (`jaxlm convert dino ...`) for `current`.

  The variant and every parameter's shape must match the model's; the
  arrays are placed like `current`'s.
  """
  from jaxlm import convert  # pylint: disable=g-import-not-at-top
  where = f'config key init.encoder={path}'
  meta = convert.load_meta(path)
  if meta.get('kind') not in ('dino', 'dinov2', 'dinov3'):
    raise JaxlmError(f'{where}: a converted {meta.get("kind")!r} checkpoint, '
                     f'not an encoder (convert one with `jaxlm convert dino`)')
  if meta.get('variant') != variant:
    raise JaxlmError(f'{where}: encoder {meta.get("variant")} but the config '
                     f'has model.variant={variant}')
  loaded = convert.load_params(path)
  check_variables(current, loaded, what=where)
  return _place_like(loaded, current)


def load_pretrained(path, config, current):
  """Few-shot transfer (thesis §6.2.4): a trained TUFA's encoder, decoder and
  head, plus the alignment tables of datasets it shares with this config;
  the other datasets' tables stay freshly initialised (zeros). The model
  settings must match the pretrained run's."""
  where = f'config key init.checkpoint={path}'
  pcfg, pdatasets, pvars, pstep = ckpt_lib.load_for_inference(path)
  mine, theirs = config.model.to_dict(), pcfg.model.to_dict()
  differ = sorted(k for k in set(mine) | set(theirs)
                  if k != 'dtype' and mine.get(k) != theirs.get(k))
  if differ:
    raise JaxlmError(f'{where}: model settings differ from the pretrained '
                     f'run: ' + ', '.join(f'model.{k}={mine.get(k)!r} vs '
                                         f'{theirs.get(k)!r}' for k in differ))
  params = dict(current)
  for part in ('encoder', 'decoder', 'head'):
    check_variables(current[part], pvars['params'][part], what=where)
    params[part] = _place_like(pvars['params'][part], current[part])
  table = dict(current['alignment'])
  kept = []
  for name, old in current['alignment'].items():
    theirs = pvars['params']['alignment'].get(name)
    if theirs is not None and theirs.shape == old.shape:
      table[name] = _place_like(theirs, old)
      kept.append(name)
  params['alignment'] = table
  fresh = sorted(set(table) - set(kept))
  log.info('initialised from %s (step %d, datasets %s); alignment kept for '
           '%s, fresh for %s', path, pstep, ', '.join(n for n, _ in pdatasets),
           ', '.join(kept) or 'none', ', '.join(fresh) or 'none')
  return params


def _restore_newest_readable(checkpointer, target):
  """(state, data_state, step) of the newest checkpoint that restores, or
  None without checkpoints.

  Newer checkpoints that cannot be restored (corrupted, half-written by a
  crashed filesystem) are set aside as `<step>.unreadable-<n>`, with a
  warning naming them, so the run can write those steps again. If none
  restores, nothing is moved and the newest one's error is raised.
  """
  failed = []
  for step in checkpointer.all_steps():
    try:
      state, data_state = checkpointer.restore(target, step)
    except Exception as e:  # orbax/tensorstore raise many kinds
      failed.append((step, e))
      continue
    for bad, e in failed:
      moved = checkpointer.set_aside(bad)
      log.warning('checkpoint %s cannot be restored (%s); resuming from '
                  'step %d, the unreadable one is kept as %s',
                  checkpointer.directory / str(bad),
                  str(e).splitlines()[0][:200], step, moved)
    return state, data_state, step
  if failed:
    raise JaxlmError(f'no checkpoint in {checkpointer.directory} can be '
                     f'restored; the newest: {failed[0][1]}')
  return None


def train(config, workdir, progress: bool = True,
          stop_at: int | None = None) -> dict:
  """Trains `config` in `workdir`, resuming from its latest checkpoint.

  stop_at: end this session after that step (saving a checkpoint), as a
  preempted job would; the next call resumes the same run.
  """
  stop = {'now': False}

  def on_sigterm(signum, frame):
    del signum, frame
    stop['now'] = True

  # Installed first, so a SIGTERM during setup or compilation still ends in
  # a saved checkpoint instead of a killed process.
  previous = signal.signal(signal.SIGTERM, on_sigterm)
  try:
    return _train(config, Path(workdir), progress, stop_at, stop)
  finally:
    signal.signal(signal.SIGTERM, previous)


def _train(config, workdir: Path, progress, stop_at, stop) -> dict:
  model, specs, datasets, tx, schedule = setup(config)
  size = config.data.image_size
  saved_cfg = workdir / ckpt_lib.CONFIG_FILE
  if saved_cfg.exists():
    saved = json.loads(saved_cfg.read_text())
    if saved.get('model') != json.loads(to_json(config)).get('model'):
      raise JaxlmError(f'{workdir} holds a run of a different model config; '
                       f'use a new --workdir')
  primary = jax.process_index() == 0
  if primary:
    ckpt_lib.write_run_metadata(workdir, to_json(config), datasets)
  checkpointer = ckpt_lib.Checkpointer(workdir, config.train.keep_checkpoints)

  t0 = time.time()
  shapes = {s.name: pipeline.mean_shape(s.source,
                                        config.data.mean_shape_samples, size)
            for s in specs}
  table = validate_mean_shapes(datasets, shapes)
  log.info('mean shapes of %s from %s faces (%.1fs)', ', '.join(shapes),
           '/'.join(str(min(config.data.mean_shape_samples, len(s.source)))
                    for s in specs), time.time() - t0)

  sample = np.zeros((1, size, size, 3), np.uint8)
  ema_decay = float(config.train.get('ema_decay', 0.0))
  init = lambda: create_state(model, tx, sample, config.data.num_anchors,
                              config.seed, table, ema=ema_decay > 0)
  mesh = sharding.make_mesh(config.get('mesh'))
  sharding.check_batch_size(config.train.batch_size, mesh)
  abstract = jax.eval_shape(init)
  state_sh = sharding.state_shardings(abstract, mesh)
  batch_sh = sharding.batch_sharding(mesh)
  data = pipeline.train_dataset(
      specs, point_offsets(datasets), num_anchors=config.data.num_anchors,
      image_size=size,
      batch_size=config.train.batch_size // jax.process_count(),
      seed=config.seed,
      mask_invisible=config.data.mask_invisible,
      process_index=jax.process_index(), process_count=jax.process_count(),
      worker_count=config.data.workers, read_threads=config.data.threads,
      augment=pipeline.augment_config(config.data.get('augment')))
  it = iter(data)

  target = jax.tree_util.tree_map(
      lambda a, sh: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=sh),
      abstract, state_sh)
  restored = _restore_newest_readable(checkpointer, target)
  if restored is not None:
    state, data_state, latest = restored
    if 'iterator' in data_state:
      it.set_state(json.loads(data_state['iterator']))
    log.info('resumed from %s at step %d', checkpointer.directory, latest)
  else:  # parameters are created already sharded
    state = jax.jit(init, out_shardings=state_sh)()
    encoder_dir = config.get('init', {}).get('encoder', '')
    if encoder_dir:
      state = state.replace(params={
          **state.params,
          'encoder': load_encoder_init(encoder_dir, config.model.variant,
                                       state.params['encoder'])})
      log.info('encoder initialised from %s', encoder_dir)
    pretrained = config.get('init', {}).get('checkpoint', '')
    if pretrained:
      state = state.replace(params=load_pretrained(pretrained, config,
                                                   state.params))
  n_params = sum(x.size for x in jax.tree_util.tree_leaves(state.params))
  log.info('model %s (%s): %.2fM parameters; datasets %s',
           config.model.name, config.model.variant, n_params / 1e6,
           ', '.join(f'{n}({k})' for n, k in datasets))

  log.info('mesh %s over %d devices (%d processes)', dict(mesh.shape),
           mesh.size, jax.process_count())
  step_fn = jax.jit(make_train_step(model, tx, schedule, ema_decay,
                                    eyes=eye_corners(specs), mesh=mesh),
                    in_shardings=(state_sh, batch_sh),
                    out_shardings=(state_sh, sharding.replicated(mesh)),
                    donate_argnums=0)
  writer = MetricWriter(workdir, enabled=primary)
  examples = (open(workdir / 'examples.jsonl', 'a', buffering=1)
              if primary and config.train.get('log_example_ids') else None)
  start = int(state.step)
  total = int(config.train.steps)
  bar = tqdm.tqdm(total=total, initial=start,
                  disable=not progress or not primary,
                  desc='train', unit='step', dynamic_ncols=True)
  last_log, t_log, metrics = start, time.time(), {}
  try:
    for step in range(start, total):
      batch = next(it)
      if examples is not None:
        examples.write(json.dumps({'step': step + 1, 'ids': np.asarray(
            batch['example_id']).tolist()}) + '\n')
      state, m = step_fn(state, sharding.global_batch(batch, batch_sh))
      done = step + 1
      if done % config.train.log_every == 0 or done == total:
        m = {k: float(v) for k, v in jax.device_get(m).items()}
        if not np.isfinite(m['loss']):
          raise JaxlmError(f'loss became {m["loss"]} at step {done}; lower '
                           f'optim.lr or set optim.grad_clip')
        dt = time.time() - t_log
        m['img_per_s'] = (done - last_log) * config.train.batch_size / dt
        last_log, t_log, metrics = done, time.time(), m
        writer.write(done, m)
        bar.set_postfix(loss=f'{m["loss"]:.4f}', lr=f'{m["lr"]:.1e}',
                        img_s=f'{m["img_per_s"]:.1f}')
      bar.update(1)
      if stop_at is not None and done >= stop_at:
        stop['now'] = True
      if (done % config.train.checkpoint_every == 0 or done == total or
          stop['now']):
        checkpointer.save(done, state, {'iterator': json.dumps(it.get_state())})
      if stop['now']:
        log.warning('stopped at step %d (checkpoint saved)', done)
        break
  finally:
    bar.close()
    checkpointer.wait()
    checkpointer.close()
    writer.close()
    if examples is not None:
      examples.close()
  return dict(step=int(state.step), stopped=stop['now'], **metrics)
