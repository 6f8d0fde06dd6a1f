"""Orbax checkpoints of the whole training state plus the data iterator.

Layout: `<workdir>/checkpoints/<step>/{state,data}` written by one
`ocp.CheckpointManager`, plus `<workdir>/config.json` (the resolved config)
and `<workdir>/datasets.json` (the training datasets, in alignment-table
order). Orbax writes each step into a temporary directory and renames it when
complete, so a crash mid-save never leaves a half-written checkpoint as the
latest: `latest_step()` only sees finished steps.
"""

from __future__ import annotations

import json
from pathlib import Path

import flax
import jax
import numpy as np
import orbax.checkpoint as ocp

from jaxlm.config import from_json
from jaxlm.errors import JaxlmError

CONFIG_FILE = 'config.json'
DATASETS_FILE = 'datasets.json'


class Checkpointer:
  """Saves and restores TrainState + data-iterator state in `workdir`."""

  def __init__(self, workdir, max_to_keep: int = 3):
    self.directory = Path(workdir).absolute() / 'checkpoints'
    self.manager = ocp.CheckpointManager(
        self.directory, item_names=('state', 'data'),
        options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep,
                                             create=True))

  def latest_step(self):
    return self.manager.latest_step()

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

  def all_steps(self) -> list[int]:
    """Finished steps, newest first (orbax ignores unfinished tmp dirs)."""
    return sorted(self.manager.all_steps(), reverse=True)

  def save(self, step: int, state, data_state: dict | None):
    tree = flax.serialization.to_state_dict(state)
    self.manager.save(int(step), args=ocp.args.Composite(
        state=ocp.args.StandardSave(tree),
        data=ocp.args.JsonSave(data_state or {})), force=True)

  def restore(self, abstract_state, step: int | None = None):
    """(state, data_state) of `step` (default latest), shaped like target."""
    step = self.latest_step() if step is None else step
    target = flax.serialization.to_state_dict(abstract_state)
    try:
      restored = self.manager.restore(step, args=ocp.args.Composite(
          state=ocp.args.StandardRestore(target),
          data=ocp.args.JsonRestore()))
    except (ValueError, KeyError, TypeError) as e:
      raise JaxlmError(f'checkpoint {self.directory / str(step)} cannot be '
                       f'restored into this config\'s model: {e}') from None
    state = flax.serialization.from_state_dict(abstract_state,
                                               restored['state'])
    return state, dict(restored['data'] or {})

  def wait(self):
    self.manager.wait_until_finished()

  def close(self):
    self.manager.close()


def write_run_metadata(workdir, config_json: str, datasets):
  Path(workdir).mkdir(parents=True, exist_ok=True)
  (Path(workdir) / CONFIG_FILE).write_text(config_json)
  (Path(workdir) / DATASETS_FILE).write_text(json.dumps(
      [[name, int(n)] for name, n in datasets]))


def _find_run(path: Path):
  """(run dir, step dir or None) for a workdir or one of its step dirs."""
  path = path.absolute()
  if (path / CONFIG_FILE).exists():
    return path, None
  if (path.parent.parent / CONFIG_FILE).exists() and path.name.isdigit():
    return path.parent.parent, path
  raise JaxlmError(f'no jaxlm checkpoint at {path} (expected a training '
                   f'workdir with {CONFIG_FILE}, or <workdir>/checkpoints/'
                   f'<step>)')


def load_for_inference(path):
  """(config, datasets, variables, step) from a workdir or a step dir.

  Raises JaxlmError when the path holds no checkpoint.
  """
  path = Path(path)
  if not path.exists():
    raise JaxlmError(f'checkpoint not found: {path}')
  run, step_dir = _find_run(path)
  config = from_json((run / CONFIG_FILE).read_text())
  datasets = [tuple(x) for x in json.loads((run / DATASETS_FILE).read_text())]
  if step_dir is None:
    steps = sorted(int(p.name) for p in (run / 'checkpoints').glob('*')
                   if p.name.isdigit()) if (run / 'checkpoints').exists() \
        else []
    if not steps:
      raise JaxlmError(f'no finished checkpoint in {run / "checkpoints"}')
    step_dir = run / 'checkpoints' / str(steps[-1])
  state_dir = step_dir / 'state'
  if not state_dir.exists():
    raise JaxlmError(f'checkpoint {step_dir} has no state (incomplete?)')
  tree = ocp.StandardCheckpointer().restore(state_dir)
  # A run trained with an EMA is evaluated with the averaged weights.
  params = tree['ema'] if tree.get('ema') is not None else tree['params']
  variables = {'params': params, 'constants': tree['constants']}
  if tree.get('batch_stats') is not None:  # CNN backbones (SLPT/DSLPT)
    variables['batch_stats'] = tree['batch_stats']
  variables = jax.tree_util.tree_map(np.asarray, variables)
  return config, datasets, variables, int(step_dir.name)


def check_variables(expected, got, what='checkpoint'):
  """Raises JaxlmError naming parameters whose presence or shape differ."""
  flat_e = {'/'.join(str(getattr(k, 'key', k)) for k in path): v.shape
            for path, v in jax.tree_util.tree_flatten_with_path(expected)[0]}
  flat_g = {'/'.join(str(getattr(k, 'key', k)) for k in path): np.shape(v)
            for path, v in jax.tree_util.tree_flatten_with_path(got)[0]}
  missing = sorted(set(flat_e) - set(flat_g))
  extra = sorted(set(flat_g) - set(flat_e))
  shape = sorted(k for k in set(flat_e) & set(flat_g)
                 if tuple(flat_e[k]) != tuple(flat_g[k]))
  if missing or extra or shape:
    parts = []
    if missing:
      parts.append(f'missing {", ".join(missing[:6])}'
                   + (' ...' if len(missing) > 6 else ''))
    if extra:
      parts.append(f'unexpected {", ".join(extra[:6])}'
                   + (' ...' if len(extra) > 6 else ''))
    for k in shape[:6]:
      parts.append(f'{k}: {what} has {tuple(flat_g[k])}, model expects '
                   f'{tuple(flat_e[k])}')
    raise JaxlmError(f'{what} does not match the model: ' + '; '.join(parts))
