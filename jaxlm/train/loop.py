"""The training loop: progress, logging, checkpoints, automatic resume."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import signal
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import tqdm

from jaxlm import checkpoints, layouts, models
from jaxlm import config as config_lib
from jaxlm.config import to_json, validate
from jaxlm.data import pipeline, query_tables, sources
from jaxlm.errors import JaxlmError
from jaxlm.models.semantic_alignment import point_offsets, validate_mean_shapes
from jaxlm.train import evaluator as evaluator_lib
from jaxlm.train import frozen as frozen_lib
from jaxlm.train import sharding
from jaxlm.train.state import create_state, make_optimizer
from jaxlm.train.step import batch_eyes, jit_step, make_train_step

log = logging.getLogger('jaxlm')


class MetricWriter:
  """Scalars to TensorBoard event files (`<workdir>/tb`) and to
  `metrics.jsonl`; images to TensorBoard only.

  `metrics.jsonl` holds each step once: a session that resumes from step
  `start` first drops the lines of later steps (written by the interrupted
  session after its last checkpoint).
  """

  def __init__(self, workdir, enabled: bool = True, start: int = 0):
    self.enabled = enabled
    if not enabled:  # only the primary process writes
      return
    from tensorboardX import SummaryWriter
    self.tb = SummaryWriter(str(Path(workdir) / 'tb'))
    path = Path(workdir) / 'metrics.jsonl'
    if path.exists():  # rewritten in one rename: a kill keeps the old one
      kept = [line for line in path.read_text().splitlines(keepends=True)
              if _step_of(line) <= start]
      tmp = path.with_name('.metrics.jsonl.tmp')
      tmp.write_text(''.join(kept))
      os.replace(tmp, path)
    self.jsonl = open(path, 'a')

  def write(self, step: int, scalars: dict):
    if not self.enabled:
      return
    for k, v in scalars.items():
      self.tb.add_scalar(k, float(v), step)
    self.jsonl.write(json.dumps({'step': step, **{k: float(v) for k, v in
                                                  scalars.items()}}) + '\n')
    self.jsonl.flush()

  def images(self, step: int, images: dict):
    """{tag: (H, W, 3) uint8 RGB} to TensorBoard."""
    if not self.enabled:
      return
    for k, img in images.items():
      self.tb.add_image(k, np.asarray(img), step, dataformats='HWC')
    self.tb.flush()

  def close(self):
    if not self.enabled:
      return
    self.tb.close()
    self.jsonl.close()


def _step_of(line: str) -> float:
  """The step of a metrics.jsonl line (inf for a torn or foreign line)."""
  try:
    return float(json.loads(line)['step'])
  except (ValueError, KeyError, TypeError):
    return float('inf')


@dataclasses.dataclass
class Experiment:
  """What a config trains: the family and its model, the training datasets
  (specs, (name, num_points) in table order, layouts) and the optimizer."""
  config: object
  family: object
  model: object
  specs: list
  datasets: tuple
  layouts: tuple
  tx: object
  schedule: object
  frozen_count: tuple[int, int] | None = None  # (frozen, all) parameters

  def init_state(self, mean_table, ema: bool = False):
    """() -> a fresh TrainState (to jit or eval_shape)."""
    c = self.config
    queries = None
    if self.family.query_table_path is not None:  # 3D-query families
      queries = query_tables.queries_table(
          [l.name for l in self.layouts],
          semantic=bool(c.data.get('semantic_queries', False)))
    return lambda: create_state(self.model, self.family, self.tx,
                                c.data.image_size, c.data.num_anchors, c.seed,
                                mean_table, ema=ema, query_table=queries)

  def train_step(self, mesh=None, ema_decay: float = 0.0):
    """The un-jitted step (`step.jit_step` jits it)."""
    return make_train_step(
        self.model, self.family, self.tx, self.schedule, self.layouts,
        ema_decay, mesh, batch_eyes(self.config.data.num_anchors,
                                    self.layouts),
        frozen=frozen_patterns(self.config))


def frozen_patterns(config) -> tuple[str, ...]:
  """`train.frozen` (parameter-path patterns, `train/frozen.py`) as a
  tuple (a saved config.json holds a list; a string read from one is one
  pattern)."""
  given = config.train.get('frozen', ())
  return (given,) if isinstance(given, str) else tuple(given)


def setup(config) -> Experiment:
  """The Experiment of a config (shared by training and the benchmarks)."""
  validate(config)
  family = models.family_of(config.model)
  init = config.get('init', {})
  has_encoder = family.encoder(family.complete(config.model)) is not None
  if init.get('encoder', '') and not has_encoder:
    raise JaxlmError(f'config key init.encoder={init.encoder}: model '
                     f'{config.model.name} with variant {config.model.variant}'
                     f' has no encoder to initialise')
  if has_encoder and 'init' in config and not (init.get('encoder', '') or
                                               init.get('checkpoint', '')):
    log.warning('init.encoder is empty: the encoder starts from random '
                'weights, not converted DINO / ConvNeXt ones')
  specs = sources.dataset_specs(config.data.train, config.data.image_size,
                                 config.data.get('data_dir', ''))
  if family.query_table_path is not None:  # every layout needs its queries
    for s in specs:
      if s.layout not in query_tables.known_layouts():
        raise JaxlmError(
            f'config key data.train.{s.name}.layout: {s.layout!r} has no 3D '
            f'query table for model {family.name} (known: '
            f'{", ".join(query_tables.known_layouts())})')
  datasets = tuple((s.name, s.num_points) for s in specs)
  model = models.build(config.model, datasets)
  if not family.anchor_masking and config.data.num_anchors:
    raise JaxlmError(f'config key data.num_anchors: {config.model.name} '
                     f'predicts every landmark; set it to 0 (all points, in '
                     f'order), not {config.data.num_anchors}')
  patterns = frozen_patterns(config)
  frozen_count = None  # (frozen, all) parameter counts with train.frozen
  if patterns:  # a typo is an error now, not after the data is read
    try:
      params = models.abstract_variables(model,
                                         config.data.image_size)['params']
    except ValueError as e:
      raise JaxlmError(f'config: the {config.model.name} model cannot be '
                       f'built with these settings: {e}') from None
    mask = frozen_lib.frozen_mask(params, patterns)
    frozen_count = frozen_lib.count(mask, params)
    encoder = family.encoder(family.complete(config.model))
    if encoder and not (init.get('encoder', '') or
                        init.get('checkpoint', '')):
      node = mask
      for k in encoder[0]:
        node = node[k]
      if all(jax.tree_util.tree_leaves(node)):
        log.warning('train.frozen freezes the encoder %s at its random '
                    'initialisation (no init.encoder or init.checkpoint)',
                    '/'.join(encoder[0]))
  evaluator_lib.check_settings(config)  # before the data is read
  tx, schedule = make_optimizer(config.optim, config.train.steps, patterns)
  return Experiment(config, family, model, specs, datasets,
                    tuple(layouts.get(s.layout) for s in specs), tx, schedule,
                    frozen_count)


def _place_like(new, current):
  """`new` arrays with the dtypes and shardings of the `current` tree."""
  return jax.tree_util.tree_map(
      lambda n, c: jax.device_put(jnp.asarray(n, c.dtype), c.sharding),
      new, current)


def model_settings(family, model_config) -> dict:
  """The model config as JSON values (tuples as lists), missing keys at the
  family's defaults when it is of `family`, for comparing runs."""
  if model_config.get('name') == family.name:
    try:
      model_config = family.complete(model_config)
    except JaxlmError:  # keys this version does not know: not the same
      pass
  return json.loads(json.dumps(dict(model_config)))


# model settings that change how a step computes, not what it computes or
# the parameters: a run may resume or start from another with them changed
# (e.g. `model.remat` switched on after running out of memory)
COMPUTE_ONLY = ('remat',)


def setting_differences(family, mine, theirs, ignore=()):
  """[(key, mine, theirs)] of the model settings that differ (JSON values,
  missing keys at the family's defaults), in key order."""
  a, b = model_settings(family, mine), model_settings(family, theirs)
  return [(k, a.get(k), b.get(k)) for k in sorted(set(a) | set(b))
          if k not in ignore and a.get(k) != b.get(k)]


def load_encoder_init(path, exp: Experiment, params):
  """`params` with the family's encoder replaced by converted weights
  (`jaxlm convert dino|dinov2|dinov3|convnext ...`). The variant and every parameter's shape must
  match the model's; the arrays are placed like the current ones."""
  where = f'config key init.encoder={path}'
  model_cfg = exp.family.complete(exp.config.model)
  keys, variant = exp.family.encoder(model_cfg)  # checked by `setup`
  loaded, meta = checkpoints.load_weights(path)
  if meta.get('kind') not in checkpoints.ENCODER_KINDS:
    raise JaxlmError(f'{where}: a converted {meta.get("kind")!r} checkpoint, '
                     f'not an encoder (convert one with `jaxlm convert dino` or '
                     f'`convnext`)')
  if meta.get('variant') != variant:
    raise JaxlmError(f'{where}: encoder {meta.get("variant")} but the config '
                     f'has model.variant={model_cfg.variant}')
  node = params
  for k in keys:
    node = node[k]
  checkpoints.check_tree(node, loaded, what=where)
  flat = checkpoints.flatten(params)
  prefix = '/'.join(keys) + '/'
  for k, v in checkpoints.flatten(_place_like(loaded, node)).items():
    flat[prefix + k] = v
  log.info('encoder %s initialised from %s', '/'.join(keys), path)
  return checkpoints.unflatten(flat)


def load_pretrained(path, exp: Experiment, state):
  """Few-shot transfer (thesis §6.2.4): `state` with every parameter (and
  BatchNorm statistic) that a trained run of the same model settings has at
  the same path and shape; the others (e.g. the alignment tables or queries
  of datasets the run did not train on) stay freshly initialised."""
  where = f'config key init.checkpoint={path}'
  run = checkpoints.load_run(path)
  differ = setting_differences(exp.family, exp.config.model,
                               run.config.model,
                               ignore=('dtype',) + COMPUTE_ONLY)
  if differ:
    raise JaxlmError(f'{where}: model settings differ from the pretrained '
                     f'run: ' + ', '.join(f'model.{k}={a!r} vs {b!r}'
                                         for k, a, b in differ))
  fresh = []

  def transfer(current, pretrained, collection):
    flat = checkpoints.flatten(current)
    theirs = checkpoints.flatten(pretrained or {})
    for k, v in flat.items():
      if k in theirs and np.shape(theirs[k]) == v.shape:
        flat[k] = _place_like(theirs[k], v)
      else:
        fresh.append(f'{collection}/{k}')
    return checkpoints.unflatten(flat)

  params = transfer(state.params, run.variables['params'], 'params')
  stats = state.batch_stats
  if stats is not None:
    stats = transfer(stats, run.variables.get('batch_stats'), 'batch_stats')
  log.info('initialised from %s (step %d, datasets %s); fresh: %s', path,
           run.step, ', '.join(n for n, _ in run.datasets),
           ', '.join(fresh) or 'none')
  return state.replace(params=params, batch_stats=stats)


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
                  checkpoints.first_line(e, 200), step, moved)
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

  Nothing a run has written is lost to a failure: the primary process holds
  an exclusive lock on the workdir (a second trainer is refused with the
  holder named); the run's metadata is written only once its model and data
  are known to build; no checkpoint is saved from a state that went
  non-finite (the run stops with the last finite checkpoint intact); a
  failed save stops training at once, keeping the checkpoints before it.
  """
  stop = {'now': False}

  def on_sigterm(signum, frame):
    del signum, frame
    stop['now'] = True

  # Installed first, so a SIGTERM during setup or compilation still ends in
  # a saved checkpoint instead of a killed process.
  previous = signal.signal(signal.SIGTERM, on_sigterm)
  workdir = Path(workdir).expanduser()
  lock = None
  try:
    exp = setup(config)
    if jax.process_index() == 0:
      checkpoints.check_writable(workdir)
      lock = checkpoints.WorkdirLock(workdir).acquire()
    return _train(exp, workdir, progress, stop_at, stop)
  finally:
    if lock is not None:
      lock.release()
    signal.signal(signal.SIGTERM, previous)


def _check_same_run(exp: Experiment, workdir: Path):
  """A workdir's run must be of the config's model settings, training
  datasets and frozen parameters (else resuming would mix two runs); the
  refusal names the keys that differ, saved -> now."""
  if not (workdir / checkpoints.CONFIG_FILE).exists():
    return
  saved_cfg, saved_datasets = checkpoints.read_run_metadata(workdir)
  differ = [(f'model.{k}', b, a) for k, a, b in
            setting_differences(exp.family, exp.config.model,
                                saved_cfg.get('model', {}),
                                ignore=COMPUTE_ONLY)]
  differ += _dataset_differences(saved_datasets, exp.datasets)
  saved_frozen = frozen_patterns(saved_cfg) if 'train' in saved_cfg else ()
  frozen = frozen_patterns(exp.config)
  if saved_frozen != frozen:
    # another optimizer-state tree: the checkpoint could not be restored
    differ.append(('train.frozen', list(saved_frozen), list(frozen)))
  if differ:
    raise JaxlmError(
        f'{workdir} holds a run this config cannot resume; saved -> now: '
        f'{config_lib.describe_differences(differ)}; use a new --workdir' +
        ('' if saved_frozen == frozen else ' (to change what is frozen, '
         'start a new run from this one with init.checkpoint)'))


def _dataset_differences(saved, now) -> list[tuple[str, object, object]]:
  """(key, saved, now) of two runs' training datasets [(name, points)]:
  the added, removed or resized ones, else their order."""
  a, b = {n: k for n, k in saved}, {n: k for n, k in now}
  out = [(f'data.train.{n} (points)', a.get(n, config_lib.ABSENT),
          b.get(n, config_lib.ABSENT))
         for n in dict.fromkeys([*a, *b]) if a.get(n) != b.get(n)]
  if not out and list(a) != list(b):
    out.append(('data.train (order)', list(a), list(b)))
  return out


def _restore_failure(error: JaxlmError, config, workdir: Path) -> JaxlmError:
  """No checkpoint restores (e.g. train.ema_decay or optim.name changed the
  state tree): `error` with the config keys that differ from the run's
  saved config, if any."""
  if not (workdir / checkpoints.CONFIG_FILE).exists():
    return error
  saved, _ = checkpoints.read_run_metadata(workdir)
  changed = config_lib.differences(saved, config)
  if not changed:
    return error
  return JaxlmError(
      f'{checkpoints.first_line(error).rstrip(":")}; config keys changed '
      f'since the run was saved (saved -> now): '
      f'{config_lib.describe_differences(changed, limit=8)}; resume with the '
      f'saved values or use a new --workdir')


def _nonfinite_tracker():
  """(first, step, metrics) -> first = (step, loss, gradient norm) of the
  first step whose loss or gradient norm was not finite (step -1: none
  yet); on device, so the loop checks every step without waiting for it."""
  def track(first, step, m):
    bad = ~(jnp.isfinite(m['loss']) & jnp.isfinite(m['grad_norm']))
    new = (first[0] < 0) & bad
    return (jnp.where(new, step, first[0]),
            jnp.where(new, m['loss'].astype(jnp.float32), first[1]),
            jnp.where(new, m['grad_norm'].astype(jnp.float32), first[2]))
  return jax.jit(track, donate_argnums=0)


@jax.jit
def _all_finite(tree):
  leaves = [jnp.isfinite(x).all() for x in jax.tree_util.tree_leaves(tree)
            if jnp.issubdtype(x.dtype, jnp.inexact)]
  return jnp.all(jnp.stack(leaves)) if leaves else jnp.bool_(True)


def _nonfinite_error(config, step, what, last_saved):
  clip = float(config.optim.get('grad_clip', 0.0) or 0.0)
  hint = ('lower optim.lr' if clip else
          'lower optim.lr or set optim.grad_clip')
  kept = (f'the last checkpoint saved (step {last_saved}) is finite and kept'
          if last_saved is not None else 'no checkpoint was saved')
  return JaxlmError(f'{what} at step {step}: training stopped and nothing '
                    f'non-finite was saved; {kept}; {hint}'
                    + (f' (optim.grad_clip is {clip:g})' if clip else ''))


def _train(exp: Experiment, workdir: Path, progress, stop_at, stop) -> dict:
  config = exp.config
  size = config.data.image_size
  _check_same_run(exp, workdir)
  primary = jax.process_index() == 0
  best_metric = config.train.get('best_metric', '')
  checkpointer = checkpoints.Checkpointer(
      workdir, config.train.keep_checkpoints, best_metric=best_metric)

  t0 = time.time()
  shapes = {s.name: pipeline.mean_shape(s.source,
                                        config.data.mean_shape_samples, size)
            for s in exp.specs}
  table = validate_mean_shapes(exp.datasets, shapes)
  log.info('mean shapes of %s from %s faces (%.1fs)', ', '.join(shapes),
           '/'.join(str(min(config.data.mean_shape_samples, len(s.source)))
                    for s in exp.specs), time.time() - t0)

  ema_decay = float(config.train.get('ema_decay', 0.0))
  init = exp.init_state(table, ema=ema_decay > 0)
  mesh = sharding.make_mesh(config.get('mesh'))
  sharding.check_batch_size(config.train.batch_size, mesh)
  try:
    abstract = jax.eval_shape(init)
  except ValueError as e:  # a module rejects its settings (variant, size)
    raise JaxlmError(f'config: the {config.model.name} model cannot be built'
                     f' with these settings: {e}') from None
  state_sh = sharding.state_shardings(abstract, mesh)
  batch_sh = sharding.batch_sharding(mesh)
  data = pipeline.train_dataset(
      exp.specs, point_offsets(exp.datasets),
      num_anchors=config.data.num_anchors, image_size=size,
      batch_size=config.train.batch_size // jax.process_count(),
      seed=config.seed,
      mask_invisible=config.data.mask_invisible,
      pad_anchors=exp.family.pad_anchors,
      process_index=jax.process_index(), process_count=jax.process_count(),
      worker_count=config.data.workers, read_threads=config.data.threads,
      augment=pipeline.augment_config(config.data.get('augment')))
  it = iter(data)

  target = jax.tree_util.tree_map(
      lambda a, sh: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=sh),
      abstract, state_sh)
  try:
    restored = _restore_newest_readable(checkpointer, target)
  except JaxlmError as e:
    raise _restore_failure(e, config, workdir) from None
  if restored is not None:
    state, data_state, latest = restored
    if 'iterator' in data_state:
      it.set_state(json.loads(data_state['iterator']))
    log.info('resumed from %s at step %d', checkpointer.directory, latest)
  else:  # parameters are created already sharded
    latest = None
    state = jax.jit(init, out_shardings=state_sh)()
    encoder_dir = config.get('init', {}).get('encoder', '')
    if encoder_dir:
      state = state.replace(params=load_encoder_init(encoder_dir, exp,
                                                     state.params))
    pretrained = config.get('init', {}).get('checkpoint', '')
    if pretrained:
      state = load_pretrained(pretrained, exp, state)
    if (encoder_dir or pretrained) and state.ema is not None:
      # the average starts from the loaded weights, not the random ones
      state = state.replace(ema=jax.tree_util.tree_map(jnp.copy,
                                                       state.params))
  if primary:  # the model, data and any checkpoint load: the run is this
    checkpoints.write_run_metadata(workdir, to_json(config), exp.datasets)
  log.info('model %s (%s): %.2fM parameters; datasets %s',
           config.model.name, config.model.variant,
           models.num_params(state.params) / 1e6,
           ', '.join(f'{n}({k})' for n, k in exp.datasets))
  if exp.frozen_count is not None:
    log.info('train.frozen %s: %.2fM of %.2fM parameters frozen',
             list(frozen_patterns(config)), exp.frozen_count[0] / 1e6,
             exp.frozen_count[1] / 1e6)

  log.info('mesh %s over %d devices (%d processes)', dict(mesh.shape),
           mesh.size, jax.process_count())
  step_fn = jit_step(exp.train_step(mesh, ema_decay), state_sh, batch_sh,
                     mesh)
  eval_every = int(config.train.get('eval_every', 0))
  evaluator = (evaluator_lib.Evaluator(config, exp.model, exp.family,
                                       exp.datasets, mesh)
               if eval_every else None)
  track = _nonfinite_tracker()
  first_bad = (jnp.int32(-1), jnp.float32(0.0), jnp.float32(0.0))
  start = int(state.step)
  writer = MetricWriter(workdir, enabled=primary, start=start)
  examples = (open(workdir / 'examples.jsonl', 'a', buffering=1)
              if primary and config.train.get('log_example_ids') else None)
  total = int(config.train.steps)
  bar = tqdm.tqdm(total=total, initial=start,
                  disable=not progress or not primary,
                  desc='train', unit='step', dynamic_ncols=True)
  last_log, t_log, metrics, evaluated = start, time.time(), {}, {}

  def check_finite():
    step = int(first_bad[0])
    if step >= 0:
      loss, norm = float(first_bad[1]), float(first_bad[2])
      what = (f'loss became {loss:g}' if not np.isfinite(loss) else
              f'the gradient norm became {norm:g} (loss {loss:g})')
      raise _nonfinite_error(config, step, what, latest)

  try:
    for step in range(start, total):
      batch = next(it)
      if examples is not None:
        examples.write(json.dumps({'step': step + 1, 'ids': np.asarray(
            batch['example_id']).tolist()}) + '\n')
      state, m = step_fn(state, sharding.global_batch(batch, batch_sh))
      done = step + 1
      first_bad = track(first_bad, jnp.int32(done), m)
      if done % config.train.log_every == 0 or done == total:
        check_finite()
        m = {k: float(v) for k, v in jax.device_get(m).items()}
        dt = time.time() - t_log
        m['img_per_s'] = (done - last_log) * config.train.batch_size / dt
        last_log, t_log, metrics = done, time.time(), m
        writer.write(done, m)
        bar.set_postfix(loss=f'{m["loss"]:.4f}', lr=f'{m["lr"]:.1e}',
                        img_s=f'{m["img_per_s"]:.1f}')
      bar.update(1)
      if stop_at is not None and done >= stop_at:
        stop['now'] = True
      evaluate_now = evaluator is not None and (done % eval_every == 0 or
                                                done == total)
      if evaluate_now:
        check_finite()
        t_eval = time.time()
        # `jaxlm eval` of a checkpoint uses its EMA too
        evaluated, overlays = evaluator(state.variables(state.ema))
        writer.write(done, evaluated)
        writer.images(done, overlays)
        took = time.time() - t_eval
        log.info('step %d: %s (%.1fs)', done, ', '.join(
            f'{k} {v:.4g}' for k, v in evaluated.items()), took)
        t_log += took  # img/s: training time only
      if (done % config.train.checkpoint_every == 0 or done == total or
          stop['now'] or (evaluate_now and best_metric)):
        check_finite()
        if not bool(_all_finite(state)):  # params, optimizer, EMA, BN
          raise _nonfinite_error(config, done, 'the training state became '
                                 'non-finite', latest)
        try:
          checkpointer.save(done, state,
                            {'iterator': json.dumps(it.get_state())},
                            metrics=evaluated if evaluate_now else None)
        except Exception as e:  # disk full, permissions, a vanished bucket
          raise JaxlmError(f'saving checkpoint {done} to '
                           f'{checkpointer.directory} failed: {e}; training '
                           f'stopped, the checkpoints before it are kept'
                           ) from None
        latest = done
        if evaluate_now and best_metric and checkpointer.best_step() == done:
          log.info('new best %s %.4g at step %d: %s (also `--checkpoint '
                   '%s`)', best_metric, evaluated[best_metric], done,
                   checkpointer.directory / str(done),
                   workdir / checkpoints.BEST)
      if stop['now']:
        log.warning('stopped at step %d (checkpoint saved)', done)
        break
  finally:
    bar.close()
    save_error = None
    try:  # orbax saves asynchronously: a failed save surfaces here
      checkpointer.wait()
      checkpointer.close()
    except Exception as e:  # pylint: disable=broad-except
      save_error = e
    writer.close()
    if examples is not None:
      examples.close()
  if save_error is not None:
    raise JaxlmError(f'saving a checkpoint to {checkpointer.directory} '
                     f'failed: {save_error}; the checkpoints before it are '
                     f'kept')
  return dict(step=int(state.step), stopped=stop['now'], **metrics,
              **evaluated)
