"""Config loading, command-line overrides and validation.

A config is a Python file with `get_config(arg=None)` returning an
`ml_collections.ConfigDict` (big_vision style). `configs/x.py:arg` passes
`arg`, which must be one of the file's `ARGS` (a config without `ARGS`
takes none). Overrides are `--config.key.sub=value`; the value is parsed as the
type of the existing field, and unknown keys or wrong types are errors that
name the key. `load_config` gives every training dataset entry all the keys
the input pipeline reads (`TRAIN_ENTRY_DEFAULTS`, `SOURCE_DEFAULTS`) and the
config `data.train_only`, so each can be overridden. `validate` finalises a
config: it keeps the training datasets `data.train_only` names, drops those
of weight 0, and expands `~` and `$VARS` in its path keys (`PATH_KEYS`).
"""

from __future__ import annotations

import ast
import difflib
import fnmatch
import importlib.util
import json
import os
import re

import ml_collections

from jaxlm.errors import JaxlmError


# The keys of a `data.train.<name>` entry the input pipeline reads besides
# its source's own (synthetic: layout, size, seed; tfds: tfds_name, layout,
# split), with their defaults; `load_config` adds the missing ones.
TRAIN_ENTRY_DEFAULTS = dict(
    weight=1.0,  # mixing weight; 0 drops the dataset (`validate`)
    limit=0,  # > 0: train on that many faces, drawn at random (few-shot)
    limit_seed=0)
# Optional keys of a dataset entry by its `source` (data/sources.py).
SOURCE_DEFAULTS = dict(
    synthetic=dict(occlusion_prob=0.4, max_yaw=60.0, loose_framing=False),
    tfds=dict(data_dir=''))  # '': `data.data_dir`


def shipped_config(name: str) -> str | None:
  """The path of config `name` ('tufa_demo.py', or 'configs/tufa_demo.py')
  shipped as `jaxlm.configs`, or None."""
  import importlib.resources  # pylint: disable=g-import-not-at-top
  base = os.path.basename(name)
  if os.path.dirname(name) not in ('', 'configs') or not base.endswith('.py'):
    return None
  path = importlib.resources.files('jaxlm.configs') / base
  return str(path) if path.is_file() else None


def load_config(spec: str) -> ml_collections.ConfigDict:
  """Loads `path.py` or `path.py:arg`. A path that does not exist but names
  a shipped config (`configs/tufa_demo.py`, `tufa_demo.py`) loads that one,
  so the documented commands work outside the repository too."""
  path, _, arg = spec.partition(':')
  if not os.path.isfile(path):
    path = shipped_config(path) or path
  if not os.path.isfile(path):
    raise JaxlmError(f'config file not found: {path}')
  module_spec = importlib.util.spec_from_file_location('_jaxlm_config', path)
  module = importlib.util.module_from_spec(module_spec)
  try:
    module_spec.loader.exec_module(module)
  except Exception as e:  # the config file itself is broken
    raise JaxlmError(f'config file {path} failed to load: '
                     f'{type(e).__name__}: {e}') from e
  if not hasattr(module, 'get_config'):
    raise JaxlmError(f'config file {path} has no get_config() function')
  accepted = tuple(getattr(module, 'ARGS', ()))
  if arg and arg not in accepted:
    raise JaxlmError(f'config {path}:{arg}: unknown argument {arg!r}; ' + (
        f'accepted: {", ".join(accepted)}' if accepted else
        'this config takes none'))
  try:
    cfg = module.get_config(arg) if arg else module.get_config()
  except (ValueError, KeyError, TypeError) as e:
    raise JaxlmError(f'config {spec}: get_config failed: '
                     f'{type(e).__name__}: {e}') from None
  if not isinstance(cfg, ml_collections.ConfigDict):
    raise JaxlmError(f'{path}: get_config() must return a ConfigDict')
  return _complete(cfg)


def _complete(cfg):
  """Adds the missing `data.train_only` and training-entry keys at their
  defaults, in place (values set already, and references, are kept)."""
  data = cfg.get('data')
  if not isinstance(data, ml_collections.ConfigDict):
    return cfg  # `validate` names what is missing
  if 'train_only' not in data:
    data.train_only = ''  # 'wflw,w300': train on these entries only
  for entry in data.get('train', {}).values():
    if isinstance(entry, ml_collections.ConfigDict):
      defaults = dict(TRAIN_ENTRY_DEFAULTS, **SOURCE_DEFAULTS.get(
          entry.get('source', 'synthetic'), {}))
      for key, value in defaults.items():
        if key not in entry:
          entry[key] = value
  return cfg


def _parse_value(key: str, text: str, current):
  def literal():
    try:
      return ast.literal_eval(text)
    except (ValueError, SyntaxError):
      return text  # a bare string

  if isinstance(current, bool):
    low = text.lower()
    if low in ('true', '1', 'yes'):
      return True
    if low in ('false', '0', 'no'):
      return False
    raise JaxlmError(f'config key {key}: expected a bool, got {text!r}')
  if isinstance(current, int):
    try:
      return int(text)
    except ValueError:
      raise JaxlmError(f'config key {key}: expected an int, got {text!r}') \
          from None
  if isinstance(current, float):
    try:
      return float(text)
    except ValueError:
      raise JaxlmError(f'config key {key}: expected a float, got {text!r}') \
          from None
  if isinstance(current, str):
    return text
  value = literal()
  if isinstance(current, (tuple, list)):
    if not isinstance(value, (tuple, list)):
      value = (value,)
    kinds = {type(v) for v in current}
    if kinds and kinds <= {int, float}:  # numbers stay numbers
      want = float if float in kinds else int
      ok = all(isinstance(v, (int, float)) and not isinstance(v, bool) and
               (want is float or isinstance(v, int)) for v in value)
      if not ok:
        raise JaxlmError(f'config key {key}: expected a sequence of '
                         f'{want.__name__}s like {tuple(current)}, got '
                         f'{text!r}')
      value = [want(v) for v in value]
    return type(current)(value)
  return value


def _lookup(cfg, key: str):
  parts = key.split('.')
  node = cfg
  for i, part in enumerate(parts[:-1]):
    if not isinstance(node, ml_collections.ConfigDict) or part not in node:
      raise _unknown(cfg, '.'.join(parts[:i + 1]), node)
    node = node[part]
  if not isinstance(node, ml_collections.ConfigDict) or parts[-1] not in node:
    raise _unknown(cfg, key, node)
  return node, parts[-1]


def _unknown(cfg, key, node):
  known = list(node.keys()) if isinstance(node, ml_collections.ConfigDict) \
      else []
  hint = difflib.get_close_matches(key.split('.')[-1], known, n=1)
  msg = f'unknown config key {key!r}'
  if hint:
    msg += f' (did you mean {".".join(key.split(".")[:-1] + hint)!r}?)'
  elif known:
    msg += f'; known keys here: {", ".join(known)}'
  return JaxlmError(msg)


def apply_overrides(cfg, overrides: dict[str, str]):
  """Applies {'model.variant': 'S/8', ...} in place; returns cfg."""
  for key, text in overrides.items():
    node, leaf = _lookup(cfg, key)
    current = node[leaf]
    if isinstance(current, ml_collections.ConfigDict):
      raise JaxlmError(f'config key {key} is a group; set one of its keys: '
                       f'{", ".join(current.keys())}')
    value = _parse_value(key, text, current)
    try:
      node[leaf] = value
    except TypeError as e:
      raise JaxlmError(f'config key {key}: {e}') from None
  return cfg


def parse_override_args(args: list[str]) -> dict[str, str]:
  """['--config.a=1', '--config.b', '2'] -> {'a': '1', 'b': '2'}."""
  out, i = {}, 0
  while i < len(args):
    a = args[i]
    if not a.startswith('--config.'):
      raise JaxlmError(f'unrecognised argument {a!r} (overrides look like '
                       f'--config.train.steps=100)')
    body = a[len('--config.'):]
    if '=' in body:
      k, v = body.split('=', 1)
    elif i + 1 < len(args):
      k, v = body, args[i + 1]
      i += 1
    else:
      raise JaxlmError(f'override {a} has no value')
    out[k] = v
    i += 1
  return out


# Config keys that hold paths (fnmatch patterns over dotted keys). The shell
# does not expand `~` after `=` (`--config.data.data_dir=~/tfds`), so
# `validate` does, and `$VAR` / `${VAR}` too.
PATH_KEYS = ('data.data_dir', 'data.*.*.data_dir', 'init.*')

_VAR = re.compile(r'\$(?:(\w+)|\{(\w+)\})')


def expand_path(path: str, what: str) -> str:
  """`path` with `~` and environment variables expanded, as a shell would;
  JaxlmError naming `what` (a config key or flag) for an unset variable."""
  for m in _VAR.finditer(path):
    if (m.group(1) or m.group(2)) not in os.environ:
      raise JaxlmError(f'{what}={path}: environment variable '
                       f'{m.group(1) or m.group(2)} is not set')
  return os.path.expandvars(os.path.expanduser(path))


def expand_paths(cfg, prefix=''):
  """Expands `~` and `$VARS` in the string values of `PATH_KEYS`, in place;
  returns cfg."""
  for key, value in cfg.items():
    dotted = prefix + key
    if isinstance(value, ml_collections.ConfigDict):
      expand_paths(value, dotted + '.')
    elif isinstance(value, str) and any(fnmatch.fnmatchcase(dotted, p)
                                        for p in PATH_KEYS):
      cfg[key] = expand_path(value, f'config key {dotted}')
  return cfg


def to_json(cfg) -> str:
  return cfg.to_json_best_effort(indent=2, sort_keys=False)


def from_json(text: str) -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict(json.loads(text))


ABSENT = '(absent)'  # a key one of two compared configs does not have


def _plain(cfg):
  if isinstance(cfg, ml_collections.ConfigDict):
    return json.loads(cfg.to_json_best_effort())
  return json.loads(json.dumps(cfg))  # tuples as lists, as a saved config


def differences(old, new, prefix: str = '') -> list[tuple[str, object,
                                                          object]]:
  """[(dotted key, old value, new value)] of the leaves of two configs (or
  dicts) that differ, in key order; `ABSENT` for a key one side lacks (a
  whole group one side lacks is one entry). Values compare as JSON."""
  a, b, out = _plain(old), _plain(new), []
  for key in sorted(set(a) | set(b)):
    x, y = a.get(key, ABSENT), b.get(key, ABSENT)
    if isinstance(x, dict) and isinstance(y, dict):
      out += differences(x, y, f'{prefix}{key}.')
    elif x != y:
      out.append((prefix + key, x, y))
  return out


def describe_differences(diffs, limit: int = 5) -> str:
  """'key: old -> new; ...' of the first `limit` differences."""
  def show(v):
    return ABSENT if v is ABSENT else '{...}' if isinstance(v, dict) else \
        repr(v)
  text = '; '.join(f'{k}: {show(a)} -> {show(b)}' for k, a, b in
                   diffs[:limit])
  more = len(diffs) - limit
  return text + (f'; and {more} more' if more > 0 else '')


_REQUIRED = ('seed', 'model.name', 'model.variant', 'data.image_size',
             'data.num_anchors', 'data.train', 'train.batch_size',
             'train.steps', 'optim.lr')


def validate(cfg):
  """Checks the keys every command needs (JaxlmError naming one), selects
  the training datasets (`data.train_only`, weight 0) and expands the path
  keys; returns cfg."""
  for key in _REQUIRED:
    node = cfg
    for part in key.split('.'):
      if not isinstance(node, ml_collections.ConfigDict) or part not in node:
        raise JaxlmError(f'config is missing required key {key!r}')
      node = node[part]
  if not len(cfg.data.train):
    raise JaxlmError('config key data.train: no training dataset')
  if cfg.train.batch_size < 1 or cfg.train.steps < 1:
    raise JaxlmError('config keys train.batch_size and train.steps must be '
                     'positive')
  _select_datasets(_complete(cfg))
  return expand_paths(cfg)


def _select_datasets(cfg):
  """Drops the training datasets `data.train_only` does not name and those
  of weight 0, with the eval datasets prompted by a dropped one (their
  prompts would not exist)."""
  train = cfg.data.train
  only = [n.strip() for n in cfg.data.train_only.split(',') if n.strip()]
  for name in only:
    if name not in train:
      raise JaxlmError(f'config key data.train_only: no training dataset '
                       f'{name!r}; known: {", ".join(train)}')
  for name, entry in train.items():
    if entry.weight < 0:
      raise JaxlmError(f'config key data.train.{name}.weight: {entry.weight}'
                       f' is negative')
  drop = [n for n, e in train.items() if (only and n not in only) or
          e.weight == 0]
  if len(drop) == len(train):
    raise JaxlmError(f'config: every training dataset has weight 0 or is '
                     f'left out by data.train_only ({", ".join(drop)})')
  for name in drop:
    del train[name]
  for name in [n for n, e in cfg.data.get('eval', {}).items()
               if e.get('prompts') in drop]:
    del cfg.data.eval[name]
