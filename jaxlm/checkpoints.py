"""Run folders and weight folders: the one place jaxlm reads and writes them.

A *run folder* is what `jaxlm train` writes and `jaxlm convert tufa|slpt|
dslpt` writes too, and what `jaxlm eval/predict --workdir/--checkpoint` read:

  <run>/config.json      the resolved config (JSON)
  <run>/datasets.json    [[name, num_points], ...] of the training datasets,
                         in table order
  <run>/checkpoints/<step>/state   orbax: a training state (step, params,
                         opt_state, constants, rng, ema, batch_stats) or, for
                         converted weights, the variables alone (params,
                         constants[, batch_stats]) at step 0
  <run>/checkpoints/<step>/data    orbax JSON: the data iterator's state
                         and the CRC-32 of every array of `state`
  <run>/convert.json     (converted runs) where the weights came from
  <run>/checkpoints/<step>/metrics  orbax JSON (runs with
                         `train.best_metric`): the evaluation metrics of
                         that step, by which the best step is kept
  <run>/best             not a folder: the name `find_run` resolves to the
                         kept step of the best `train.best_metric`
  <run>/eval/            `jaxlm eval` of the run's newest checkpoint;
  <run>/eval_<step>/     of one step folder (`eval_dir`)

written by one `Checkpointer` (an orbax CheckpointManager: each step goes
to a temporary folder renamed when complete, so a crash mid-save never
leaves a half-written step as the latest) and read for inference by
`load_run`. A *weights folder* (`jaxlm convert dino|dinov2|dinov3`, read by
`init.encoder`) is `<dir>/params` (orbax) + `<dir>/convert.json`.

Converted folders are created through `atomic_dir` (a failed conversion
leaves nothing); `check_tree` is the one check of a loaded tree against
the shapes a model expects.
"""

from __future__ import annotations

import contextlib
import errno
import io
import json
import logging
import os
import shutil
import socket
import sys
import tempfile
import threading
import time
import zlib
from pathlib import Path
from typing import NamedTuple

import jax
import ml_collections
import numpy as np
import orbax.checkpoint as ocp

from jaxlm.config import from_json
from jaxlm.errors import JaxlmError

log = logging.getLogger('jaxlm')

CONFIG_FILE = 'config.json'
DATASETS_FILE = 'datasets.json'
META_FILE = 'convert.json'
PARAMS_DIR = 'params'
# Kinds of weights folders that hold a ViT encoder (`init.encoder`).
ENCODER_KINDS = ('dino', 'dinov2', 'dinov3', 'convnext')


def first_line(error: BaseException, limit: int = 300) -> str:
  """The first line of an exception's message (its type for an empty one)."""
  return (str(error) or type(error).__name__).splitlines()[0][:limit]


# --- trees -------------------------------------------------------------------


def key_path(keys) -> str:
  """'a/b/kernel' of a jax key path (dict keys, dataclass fields, indices)."""
  return '/'.join(str(getattr(k, 'key', getattr(k, 'name', k))) for k in keys)


def flatten(tree) -> dict[str, object]:
  """{'a/b/kernel': leaf} of a nested dict / pytree."""
  return {key_path(path): v
          for path, v in jax.tree_util.tree_flatten_with_path(tree)[0]}


def unflatten(flat: dict) -> dict:
  """The nested dict of {'a/b/kernel': leaf}."""
  tree: dict = {}
  for path, v in flat.items():
    node = tree
    *parents, leaf = path.split('/')
    for p in parents:
      node = node.setdefault(p, {})
    node[leaf] = v
  return tree


def check_tree(expected, got, what='checkpoint'):
  """Raises JaxlmError naming every entry of `got` missing, unexpected or
  shaped differently from `expected` (arrays or ShapeDtypeStructs)."""
  want = {k: tuple(np.shape(v)) for k, v in flatten(expected).items()}
  have = {k: tuple(np.shape(v)) for k, v in flatten(got).items()}
  missing, extra = sorted(set(want) - set(have)), sorted(set(have) - set(want))
  shapes = sorted(k for k in set(want) & set(have) if want[k] != have[k])
  if not (missing or extra or shapes):
    return
  parts = []
  if missing:
    parts.append(f'missing {", ".join(missing[:6])}'
                 + (' ...' if len(missing) > 6 else ''))
  if extra:
    parts.append(f'unexpected {", ".join(extra[:6])}'
                 + (' ...' if len(extra) > 6 else ''))
  parts += [f'{k}: {what} has {have[k]}, model expects {want[k]}'
            for k in shapes[:6]]
  raise JaxlmError(f'{what} does not match the model: ' + '; '.join(parts))


def checksums(tree) -> dict[str, int]:
  """{path: CRC-32 of the array's bytes} of every addressable array leaf
  (arrays sharded over other processes are left out)."""
  out = {}
  for path, leaf in flatten(tree).items():
    if leaf is None or (isinstance(leaf, jax.Array) and
                        not leaf.is_fully_addressable):
      continue
    a = np.ascontiguousarray(np.asarray(leaf))
    out[path] = zlib.crc32(a.view(np.uint8).reshape(-1).data) if a.size else 0
  return out


class CorruptCheckpoint(JaxlmError):
  """A checkpoint whose arrays do not match the checksums saved with it."""


def verify_checksums(tree, expected: dict | None, where: str):
  """Raises CorruptCheckpoint naming the arrays whose bytes changed since
  they were saved (`expected` from `checksums`; None: nothing recorded)."""
  if not expected:
    return
  got = checksums(tree)
  bad = sorted(k for k, v in expected.items() if k in got and got[k] != v)
  if bad:
    raise CorruptCheckpoint(f'{where}: the data of {len(bad)} array(s) '
                            f'changed since they were saved (corrupt files?):'
                            f' {", ".join(bad[:5])}')


# Lines of the tracebacks TensorStore's in-flight reads print when a failed
# orbax restore has closed its event loop (see _quiet_failed_restore).
_CLOSED_LOOP_NOISE = ('Traceback (most recent call last):',
                      'asyncio/base_events.py', 'self._check_closed()',
                      "raise RuntimeError('Event loop is closed')",
                      'RuntimeError: Event loop is closed')


class _HeldStderr(io.TextIOBase):
  """Collects what is written (from any thread) for `_quiet_failed_restore`."""

  def __init__(self):
    super().__init__()
    self.parts, self.lock = [], threading.Lock()

  def write(self, text):
    with self.lock:
      self.parts.append(text)
    return len(text)

  def text(self):
    with self.lock:
      return ''.join(self.parts)


_QUIET_LOCK = threading.Lock()
_QUIET = dict(depth=0, real=None, held=None)


@contextlib.contextmanager
def _quiet_failed_restore(grace_s: float = 0.5):
  """Runs a restore without the noise of a failed one.

  When an orbax restore fails (a corrupt or half-written checkpoint), orbax
  closes its asyncio loop while TensorStore still has reads of the other
  arrays in flight; each completion then fails to reach the closed loop and
  prints a 'RuntimeError: Event loop is closed' traceback from its thread:
  harmless, but hundreds to thousands of lines around the one warning that
  matters. Stderr is held during the restore (and `grace_s` after a
  failure, for the reads still in flight), then written out without them.
  """
  with _QUIET_LOCK:  # nested or concurrent restores share one hold
    _QUIET['depth'] += 1
    if _QUIET['depth'] == 1:
      _QUIET['real'], _QUIET['held'] = sys.stderr, _HeldStderr()
      sys.stderr = _QUIET['held']
  try:
    yield
  except BaseException:
    time.sleep(grace_s)
    raise
  finally:
    with _QUIET_LOCK:
      _QUIET['depth'] -= 1
      if _QUIET['depth'] == 0:
        real, held = _QUIET['real'], _QUIET['held']
        if sys.stderr is held:
          sys.stderr = real
        kept = [line for line in held.text().splitlines(keepends=True)
                if not any(n in line for n in _CLOSED_LOOP_NOISE)]
        if kept:
          real.write(''.join(kept))
          real.flush()


# --- folders -----------------------------------------------------------------


@contextlib.contextmanager
def atomic_dir(dst):
  """Yields a temporary sibling folder that becomes `dst` on success.

  Refuses a non-empty `dst`; on any error the temporary folder is removed
  and `dst` is left as it was.
  """
  dst = Path(dst).absolute()
  if dst.exists() and (not dst.is_dir() or any(dst.iterdir())):
    raise JaxlmError(f'{dst} exists and is not an empty folder')
  dst.parent.mkdir(parents=True, exist_ok=True)
  tmp = Path(tempfile.mkdtemp(prefix=f'.{dst.name}.', dir=dst.parent))
  try:
    yield tmp
    if dst.exists():
      dst.rmdir()
    tmp.rename(dst)
  except BaseException:
    shutil.rmtree(tmp, ignore_errors=True)
    raise


def write_meta(folder, meta: dict):
  (Path(folder) / META_FILE).write_text(json.dumps(meta, indent=2))


def load_meta(path) -> dict:
  """convert.json of a converted folder, or JaxlmError."""
  f = Path(path) / META_FILE
  if not f.exists():
    raise JaxlmError(f'{path}: not a converted checkpoint (no {META_FILE}; '
                     f'make one with `jaxlm convert`)')
  return json.loads(f.read_text())


def check_writable(folder):
  """Creates `folder` if needed and checks a file can be written there;
  JaxlmError naming the folder and the cause otherwise."""
  folder = Path(folder)
  try:
    folder.mkdir(parents=True, exist_ok=True)
    fd, probe = tempfile.mkstemp(prefix='.write-test-', dir=folder)
    os.close(fd)
    os.unlink(probe)
  except OSError as e:
    raise JaxlmError(f'{folder} is not writable: {e.strerror or e}') from None


class WorkdirLock:
  """An exclusive lock on a run folder while one trainer writes it.

  `flock` on `<run>/.lock`: the kernel releases it when the process exits
  or dies, so a lock left by a crashed run never blocks; the file records
  the holder's host and pid for the message a second trainer gets.
  """

  FILE = '.lock'

  def __init__(self, run):
    self.path = Path(run) / self.FILE
    self.fd = None

  def acquire(self):
    import fcntl  # pylint: disable=g-import-not-at-top
    fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
      if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
        os.close(fd)  # a filesystem without locks (some NFS/FUSE mounts)
        log.warning('cannot lock %s (%s): nothing stops a second trainer '
                    'on this workdir', self.path, e.strerror or e)
        return self
      holder = os.read(fd, 256).decode(errors='replace').strip() or 'unknown'
      os.close(fd)
      raise JaxlmError(f'{self.path.parent} is being trained by another '
                       f'process ({holder}); wait for it to finish or use '
                       f'another --workdir') from None
    os.ftruncate(fd, 0)
    os.write(fd, f'pid {os.getpid()} on {socket.gethostname()} since '
             f'{time.strftime("%Y-%m-%d %H:%M:%S")}'.encode())
    self.fd = fd
    return self

  def release(self):
    if self.fd is not None:
      os.close(self.fd)  # closing the descriptor releases the flock
      self.fd = None

  def __enter__(self):
    return self.acquire()

  def __exit__(self, *exc):
    self.release()


# --- weights folders -----------------------------------------------------------


def save_weights(dst, tree: dict, meta: dict):
  """Writes `dst/params` (orbax) + `dst/convert.json` atomically."""
  with atomic_dir(dst) as tmp:
    with ocp.StandardCheckpointer() as ckptr:
      ckptr.save(tmp / PARAMS_DIR, tree)
      ckptr.wait_until_finished()
    write_meta(tmp, meta)


def load_weights(path) -> tuple[dict, dict]:
  """(params tree of numpy arrays, meta) of a weights folder."""
  path = Path(path).expanduser().absolute()
  meta = load_meta(path)
  try:
    with ocp.StandardCheckpointer() as ckptr, _quiet_failed_restore():
      tree = ckptr.restore(path / PARAMS_DIR)
  except Exception as e:  # orbax/tensorstore raise many kinds
    raise JaxlmError(f'weights folder {path} cannot be read: '
                     f'{first_line(e)}') from None
  return jax.tree_util.tree_map(np.asarray, tree), meta


# --- run folders -------------------------------------------------------------


def _write_atomic(path: Path, text: str):
  """`path` replaced by `text` in one rename (never half-written)."""
  tmp = path.with_name(f'.{path.name}.{os.getpid()}.tmp')
  tmp.write_text(text)
  os.replace(tmp, path)


def write_run_metadata(run, config_json: str, datasets):
  run = Path(run)
  run.mkdir(parents=True, exist_ok=True)
  _write_atomic(run / CONFIG_FILE, config_json)
  _write_atomic(run / DATASETS_FILE, json.dumps(
      [[name, int(n)] for name, n in datasets]))


def read_run_metadata(run) -> tuple[ml_collections.ConfigDict, list]:
  """(config, datasets) of a run folder; JaxlmError naming a missing or
  unreadable file."""
  run = Path(run)
  try:
    config = from_json((run / CONFIG_FILE).read_text())
    datasets = [tuple(x) for x in json.loads(
        (run / DATASETS_FILE).read_text())]
  except (OSError, ValueError) as e:
    raise JaxlmError(f'run folder {run}: cannot read its metadata '
                     f'({first_line(e)})') from None
  return config, datasets


BEST = 'best'  # `<run>/best`: the run's best step (`find_run`)
METRICS_ITEM = 'metrics'  # orbax's folder of a step's metrics


def best_mode(metric: str) -> str:
  """'max' for a metric where higher is better (AUC: '.../auc'), 'min' for
  the others (NME, FR)."""
  return 'max' if metric.rsplit('/', 1)[-1] == 'auc' else 'min'


def _rank(metric: str):
  """metrics dict -> a number that is higher the better the step is by
  `metric` (a step without it, or with a NaN, ranks last)."""
  sign = 1.0 if best_mode(metric) == 'max' else -1.0

  def rank(metrics) -> float:
    value = float((metrics or {}).get(metric, np.nan))
    return sign * value if np.isfinite(value) else -np.inf
  return rank


class Checkpointer:
  """Saves and restores a state tree + data-iterator state in a run folder.

  Keeps the newest `max_to_keep` steps and, with `best_metric` (e.g.
  'eval/wflw/nme'; `best_mode` says whether lower or higher is better),
  also the one step saved with the best value of that metric (`save`'s
  `metrics`), whatever its age: orbax's LatestN and BestN(n=1) preservation
  policies, the metrics written in each step's folder so a resumed run
  still knows its best.
  """

  def __init__(self, run, max_to_keep: int = 3, best_metric: str = ''):
    self.directory = Path(run).absolute() / 'checkpoints'
    self.best_metric = best_metric
    if best_metric:
      rank = _rank(best_metric)
      options = ocp.CheckpointManagerOptions(
          create=True, best_fn=rank, best_mode='max',
          preservation_policy=ocp.checkpoint_managers.AnyPreservationPolicy([
              ocp.checkpoint_managers.LatestN(n=max_to_keep),
              ocp.checkpoint_managers.BestN(
                  get_metric_fn=rank, n=1,
                  keep_checkpoints_without_metrics=False)]))
    else:
      options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep,
                                             create=True)
    self.manager = ocp.CheckpointManager(
        self.directory, item_names=('state', 'data'), options=options)

  def latest_step(self):
    return self.manager.latest_step()

  def all_steps(self) -> list[int]:
    """Finished steps, newest first (orbax ignores unfinished tmp dirs)."""
    return sorted(self.manager.all_steps(), reverse=True)

  def set_aside(self, step: int) -> Path:
    """Renames an unrestorable step's folder to `<step>.unreadable-<n>` (kept
    for inspection, invisible to orbax) so the run can write that step
    again."""
    src = self.directory / str(step)
    n = 0
    while (dst := self.directory / f'{step}.unreadable-{n}').exists():
      n += 1
    if jax.process_index() == 0:
      src.rename(dst)
    self.manager.reload()
    return dst

  def save(self, step: int, tree, data_state: dict | None = None,
           metrics: dict | None = None):
    """Saves `tree` (a pytree: a TrainState or a variables dict), with the
    CRC-32 of every array in the data item (checked on restore), and with
    `best_metric`, the step's `metrics` ({name: float}; a step saved
    without them is kept only while it is among the newest)."""
    import flax  # pylint: disable=g-import-not-at-top
    tree = flax.serialization.to_state_dict(tree)
    data = dict(data_state or {}, checksums=checksums(tree))
    if metrics and self.best_metric:
      metrics = {k: float(v) for k, v in metrics.items()}
    else:
      metrics = None  # orbax writes metrics only when it tracks a best
    self.manager.save(int(step), args=ocp.args.Composite(
        state=ocp.args.StandardSave(tree),
        data=ocp.args.JsonSave(data)), metrics=metrics, force=True)

  def best_step(self) -> int | None:
    """The kept step with the best `best_metric` (None: no step saved with
    it yet, or no `best_metric`)."""
    if not self.best_metric:
      return None
    return self.manager.best_step()  # saves still in flight included

  def restore(self, abstract_state, step: int | None = None):
    """(state, data_state) of `step` (default latest), shaped like target."""
    import flax  # pylint: disable=g-import-not-at-top
    step = self.latest_step() if step is None else step
    target = flax.serialization.to_state_dict(abstract_state)
    try:
      with _quiet_failed_restore():
        restored = self.manager.restore(step, args=ocp.args.Composite(
            state=ocp.args.StandardRestore(target),
            data=ocp.args.JsonRestore()))
    except (ValueError, KeyError, TypeError) as e:
      raise JaxlmError(f'checkpoint {self.directory / str(step)} cannot be '
                       f'restored into this config\'s model: {e}') from None
    data = dict(restored['data'] or {})
    verify_checksums(restored['state'], data.pop('checksums', None),
                     f'checkpoint {self.directory / str(step)}')
    state = flax.serialization.from_state_dict(abstract_state,
                                               restored['state'])
    return state, data

  def wait(self):
    self.manager.wait_until_finished()

  def close(self):
    self.manager.close()


def write_run(dst, variables: dict, datasets, config_json: str, meta: dict):
  """A run folder of converted weights at step 0, written atomically."""
  with atomic_dir(dst) as tmp:
    ckpt = Checkpointer(tmp, max_to_keep=1)
    ckpt.save(0, variables)
    ckpt.wait()
    ckpt.close()
    write_run_metadata(tmp, config_json, datasets)
    write_meta(tmp, meta)


class Run(NamedTuple):
  """A loaded run folder: what inference needs."""
  config: ml_collections.ConfigDict
  datasets: list[tuple[str, int]]
  variables: dict  # params (the EMA where the run kept one), constants[,
  #                  batch_stats], numpy arrays
  step: int


def step_metrics(step_dir) -> dict | None:
  """The metrics a step was saved with (`Checkpointer.save`), or None."""
  f = Path(step_dir) / METRICS_ITEM / METRICS_ITEM
  try:
    return json.loads(f.read_text())
  except (OSError, ValueError):
    return None


def _best_of(ckpts: Path, metric: str) -> int | None:
  """The finished step in `ckpts` saved with the best `metric`, or None."""
  rank = _rank(metric)
  ranked = [(rank(m), int(p.name)) for p in ckpts.glob('*')
            if p.name.isdigit() and (m := step_metrics(p)) is not None
            and np.isfinite(rank(m))]
  return max(ranked)[1] if ranked else None


def best_checkpoint(run) -> Path:
  """`<run>/checkpoints/<step>` of the run's best step by its config's
  `train.best_metric`; JaxlmError when it has none."""
  run = Path(run)
  config, _ = read_run_metadata(run)
  metric = config.get('train', {}).get('best_metric', '')
  if not metric:
    raise JaxlmError(f'{run / BEST}: the run keeps no best checkpoint (its '
                     f'config has no train.best_metric)')
  step = _best_of(run / 'checkpoints', metric)
  if step is None:
    raise JaxlmError(f'{run / BEST}: no checkpoint of the run was saved with '
                     f'{metric} yet (train.eval_every steps)')
  return run / 'checkpoints' / str(step)


def find_run(path) -> tuple[Path, Path | None]:
  """(run folder, step folder or None) of a run folder, one of its steps,
  or `<run>/best` (its best step, `best_checkpoint`)."""
  path = Path(path).expanduser().absolute()
  if (path.name == BEST and not path.exists() and
      (path.parent / CONFIG_FILE).exists()):
    return path.parent, best_checkpoint(path.parent)
  if not path.exists():
    raise JaxlmError(f'checkpoint not found: {path}')
  if (path / CONFIG_FILE).exists():
    return path, None
  if (path.parent.parent / CONFIG_FILE).exists() and path.name.isdigit():
    return path.parent.parent, path
  raise JaxlmError(f'no jaxlm checkpoint at {path} (expected a run folder '
                   f'with {CONFIG_FILE}, or <run>/checkpoints/<step>)')


def eval_dir(path) -> Path:
  """Where `jaxlm eval` writes by default: `<run>/eval` for a run folder,
  `<run>/eval_<step>` for one of its step folders (next to, not inside,
  orbax's folder; an older step does not overwrite the newest's results)."""
  run, step_dir = find_run(path)
  return run / ('eval' if step_dir is None else f'eval_{step_dir.name}')


def _local_target(ckptr, state_dir: Path):
  """The saved arrays' shapes and dtypes, placed on this process's first
  device: restores a step saved by any number of processes and devices
  (without a target, orbax refuses one saved on another topology, e.g. a
  multi-host run's checkpoint read by `jaxlm eval` on one machine)."""
  item = ckptr.metadata(state_dir)
  item = getattr(item, 'item_metadata', item)  # orbax >= 0.11: StepMetadata
  tree = getattr(item, 'tree', item)
  device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
  return jax.tree_util.tree_map(
      lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=device), tree)


def _read_step(step_dir: Path) -> dict:
  """The variables of one step folder, checked against its checksums."""
  state_dir = step_dir / 'state'
  if not state_dir.exists():
    raise JaxlmError(f'checkpoint {step_dir} has no state (incomplete?)')
  # Checkpointers are closed after use: left to the garbage collector they
  # print "Event loop is closed" errors by the thousand at exit.
  with ocp.StandardCheckpointer() as ckptr, _quiet_failed_restore():
    tree = ckptr.restore(state_dir, _local_target(ckptr, state_dir))
  data = {}
  if (step_dir / 'data').exists():
    with ocp.Checkpointer(ocp.JsonCheckpointHandler()) as ckptr:
      data = ckptr.restore(step_dir / 'data') or {}
  verify_checksums(tree, data.get('checksums'), f'checkpoint {step_dir}')
  # A run trained with an EMA is evaluated with the averaged weights.
  params = tree['ema'] if tree.get('ema') is not None else tree['params']
  variables = {'params': params, 'constants': tree['constants']}
  if tree.get('batch_stats') is not None:  # BatchNorm statistics
    variables['batch_stats'] = tree['batch_stats']
  return jax.tree_util.tree_map(np.asarray, variables)


def load_run(path) -> Run:
  """The config, datasets and variables of a run folder (its newest
  readable step: newer ones that cannot be read or fail their checksums are
  skipped with a warning) or of one step folder. JaxlmError when there is
  no readable checkpoint."""
  run, step_dir = find_run(path)
  config, datasets = read_run_metadata(run)
  if step_dir is not None:
    try:
      variables = _read_step(step_dir)
    except JaxlmError:
      raise
    except Exception as e:  # orbax/tensorstore raise many kinds
      raise JaxlmError(f'checkpoint {step_dir} cannot be read: '
                       f'{first_line(e)}') from None
    return Run(config, datasets, variables, int(step_dir.name))
  ckpts = run / 'checkpoints'
  steps = sorted((int(p.name) for p in ckpts.glob('*') if p.name.isdigit()),
                 reverse=True) if ckpts.exists() else []
  if not steps:
    raise JaxlmError(f'no finished checkpoint in {ckpts}')
  errors = []
  for step in steps:
    try:
      variables = _read_step(ckpts / str(step))
    except Exception as e:  # orbax/tensorstore raise many kinds
      errors.append(e)
      log.warning('checkpoint %s cannot be read (%s); trying the previous '
                  'one', ckpts / str(step), first_line(e, 200))
      continue
    return Run(config, datasets, variables, step)
  raise JaxlmError(f'no checkpoint in {ckpts} can be read; the newest: '
                   f'{first_line(errors[0])}')
