"""PyTorch checkpoints -> jaxlm params, as a pipeline of small steps.

  read tensors (`read_tensors`: .pth/.pt with torch.load(weights_only=True),
  or .safetensors) -> rename keys and reshape/transpose (`Rules`: one rule
  per target parameter, naming the source keys it consumes) -> check the
  result against `jax.eval_shape` of the target model (`check_tree`) ->
  save (`save_params`: orbax, written to a temporary folder and renamed, so a
  failed conversion leaves nothing at the destination).

Every source key must be consumed by a rule or listed as ignored, and every
target parameter must be produced: leftovers on either side and shape
mismatches are errors naming the keys. The converters of each source are
`dino.py` (DINO v1, original/timm and Hugging Face names), `dinov2.py` and
`tufa.py`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import shutil
import tempfile
from pathlib import Path
from typing import Callable, Iterable

import jax
import numpy as np

from jaxlm.errors import JaxlmError

PARAMS_DIR = 'params'
META_FILE = 'convert.json'


class ConversionError(JaxlmError):
  """A checkpoint that does not fit the target (keys or shapes named)."""


# --- read ----------------------------------------------------------------


def read_tensors(path) -> dict[str, np.ndarray]:
  """{key: float32/int array} of a .pth/.pt/.bin or .safetensors file.

  PyTorch files are read with `torch.load(weights_only=True)`, which refuses
  to unpickle anything but tensors and plain containers: a file that would
  run code is an error, never executed. Nested checkpoints are unwrapped
  (`state_dict`, `model`, `teacher`, ...) by `flatten_state`.
  """
  path = Path(path)
  if not path.is_file():
    raise ConversionError(f'{path}: file not found')
  if path.suffix == '.safetensors':
    return _read_safetensors(path)
  try:
    import torch  # pylint: disable=g-import-not-at-top
  except ImportError:
    raise ConversionError(
        f'{path}: reading PyTorch files needs torch (CPU build: '
        f'pip install torch --index-url https://download.pytorch.org/whl/cpu);'
        f' .safetensors files need only the safetensors package') from None
  try:
    obj = torch.load(path, map_location='cpu', weights_only=True)
  except Exception as e:  # pickle, zip and EOF errors differ by version
    text = str(e)
    if 'Weights only load failed' in text or 'Unsupported' in text:
      raise ConversionError(
          f'{path}: refused to unpickle it: it holds Python objects other '
          f'than tensors (torch.load(weights_only=True) would have to run '
          f'code). Re-save only the state dict. ({text.splitlines()[0]})'
      ) from None
    raise ConversionError(f'{path}: not a readable PyTorch checkpoint '
                          f'(truncated or corrupt?): {text.splitlines()[0]}'
                          ) from None
  return {k: _to_numpy(v) for k, v in flatten_state(obj, str(path)).items()}


def _to_numpy(t):
  import torch  # pylint: disable=g-import-not-at-top
  if t.dtype in (torch.bfloat16, torch.float16):
    t = t.float()
  return t.detach().cpu().numpy()


def _read_safetensors(path: Path) -> dict[str, np.ndarray]:
  try:
    from safetensors import safe_open  # pylint: disable=g-import-not-at-top
  except ImportError:
    raise ConversionError(f'{path}: reading .safetensors needs the '
                          f'safetensors package') from None
  out = {}
  try:
    with safe_open(str(path), framework='numpy') as f:
      for k in f.keys():
        out[k] = f.get_tensor(k)
  except TypeError:  # bf16 has no numpy dtype: go through torch
    with safe_open(str(path), framework='pt') as f:
      out = {k: _to_numpy(f.get_tensor(k)) for k in f.keys()}
  except Exception as e:  # header or size errors of a truncated file
    raise ConversionError(f'{path}: not a readable safetensors file '
                          f'(truncated or corrupt?): {e}') from None
  return out


_WRAPPERS = ('state_dict', 'model', 'teacher', 'model_state_dict', 'module',
             'net', 'params')


def flatten_state(obj, where: str) -> dict:
  """The tensor dict inside a checkpoint object, without wrapper prefixes."""
  import torch  # pylint: disable=g-import-not-at-top
  while isinstance(obj, dict) and not any(
      isinstance(v, torch.Tensor) for v in obj.values()):
    inner = [k for k in _WRAPPERS if k in obj]
    if not inner:
      raise ConversionError(f'{where}: no tensors found (top-level keys: '
                            f'{", ".join(map(str, list(obj)[:10]))})')
    obj = obj[inner[0]]
  if not isinstance(obj, dict):
    raise ConversionError(f'{where}: expected a state dict, found '
                          f'{type(obj).__name__}')
  tensors = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
  for prefix in ('module.', 'backbone.'):
    if tensors and all(k.startswith(prefix) for k in tensors):
      tensors = {k[len(prefix):]: v for k, v in tensors.items()}
  return tensors


# --- rename / reshape ------------------------------------------------------


def linear(w):
  """torch Linear weight (out, in) -> flax Dense kernel (in, out)."""
  return np.ascontiguousarray(np.asarray(w).T)


def conv(w):
  """torch Conv2d weight (out, in, kh, kw) -> flax Conv (kh, kw, in, out)."""
  return np.ascontiguousarray(np.asarray(w).transpose(2, 3, 1, 0))


def same(w):
  return np.asarray(w)


@dataclasses.dataclass
class Rules:
  """target path ('a/b/kernel') -> (source keys, fn(*arrays) -> array)."""
  rules: dict[str, tuple[tuple[str, ...], Callable]] = dataclasses.field(
      default_factory=dict)
  ignore: set[str] = dataclasses.field(default_factory=set)
  applied: dict[str, tuple[str, ...]] = dataclasses.field(
      default_factory=dict)  # filled by apply(): target -> source keys

  def add(self, target: str, sources: str | Iterable[str], fn=same):
    self.rules[target] = ((sources,) if isinstance(sources, str)
                          else tuple(sources), fn)

  def apply(self, tensors: dict[str, np.ndarray], where: str) -> dict:
    """Flat {target: array}; errors name unused or missing source keys."""
    used, missing, out = set(), [], {}
    for target, (sources, fn) in self.rules.items():
      absent = [s for s in sources if s not in tensors]
      if absent:
        missing.extend(absent)
        continue
      used.update(sources)
      out[target] = np.asarray(fn(*[tensors[s] for s in sources]),
                               np.float32)
      self.applied[target] = sources
    left = sorted(set(tensors) - used - self.ignore)
    if missing or left:
      parts = []
      if missing:
        parts.append(f'missing {len(missing)} key(s): '
                     f'{", ".join(missing[:8])}'
                     + (' ...' if len(missing) > 8 else ''))
      if left:
        parts.append(f'{len(left)} key(s) not used by any parameter: '
                     f'{", ".join(left[:8])}' + (' ...' if len(left) > 8
                                                  else ''))
      raise ConversionError(f'{where}: ' + '; '.join(parts) + ' (a '
                            'checkpoint of another architecture or size?)')
    return out


def unflatten(flat: dict[str, np.ndarray]) -> dict:
  tree: dict = {}
  for path, v in flat.items():
    node = tree
    *parents, leaf = path.split('/')
    for p in parents:
      node = node.setdefault(p, {})
    node[leaf] = v
  return tree


def flatten(tree, prefix='') -> dict[str, object]:
  out = {}
  for k, v in tree.items():
    path = f'{prefix}{k}'
    if isinstance(v, dict):
      out.update(flatten(v, path + '/'))
    else:
      out[path] = v
  return out


def check_tree(abstract, tree, where: str):
  """Errors naming every parameter missing, unexpected or misshapen."""
  want = {k: tuple(v.shape) for k, v in flatten(
      jax.tree_util.tree_map(lambda x: x, _as_dict(abstract))).items()}
  got = {k: tuple(np.shape(v)) for k, v in flatten(tree).items()}
  missing, extra = sorted(set(want) - set(got)), sorted(set(got) - set(want))
  shapes = [f'{k}: converted {got[k]}, model expects {want[k]}'
            for k in sorted(set(want) & set(got)) if want[k] != got[k]]
  if missing or extra or shapes:
    parts = []
    if missing:
      parts.append(f'model parameters not produced: {", ".join(missing[:8])}')
    if extra:
      parts.append(f'produced but not in the model: {", ".join(extra[:8])}')
    parts += shapes[:8]
    raise ConversionError(f'{where}: ' + '; '.join(parts))


def _as_dict(tree):
  if hasattr(tree, 'items'):
    return {k: _as_dict(v) for k, v in tree.items()}
  return tree


# --- save / load -------------------------------------------------------------


@contextlib.contextmanager
def atomic_dir(dst):
  """Yields a temporary sibling folder that becomes `dst` on success.

  Refuses a non-empty `dst`; on any error the temporary folder is removed
  and `dst` is left as it was.
  """
  dst = Path(dst).absolute()
  if dst.exists() and any(dst.iterdir()):
    raise ConversionError(f'--dst {dst} exists and is not empty')
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


def save_params(dst, tree: dict, meta: dict):
  """Writes `dst/params` (orbax) + `dst/convert.json` atomically."""
  import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top
  with atomic_dir(dst) as tmp:
    ckptr = ocp.StandardCheckpointer()
    ckptr.save(tmp / PARAMS_DIR, tree)
    ckptr.wait_until_finished()
    write_meta(tmp, meta)


def write_meta(folder, meta: dict):
  (Path(folder) / META_FILE).write_text(json.dumps(meta, indent=2))


def load_meta(path) -> dict:
  path = Path(path)
  f = path / META_FILE
  if not f.exists():
    raise JaxlmError(f'{path}: not a converted checkpoint (no {META_FILE}; '
                     f'make one with `jaxlm convert`)')
  return json.loads(f.read_text())


def load_params(path) -> dict:
  import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top
  path = Path(path).absolute()
  load_meta(path)
  tree = ocp.StandardCheckpointer().restore(path / PARAMS_DIR)
  return jax.tree_util.tree_map(np.asarray, tree)


def mapping_lines(applied: dict, tree: dict, ignored=()) -> list[str]:
  """'target (shape) <- source[, source]' for every converted parameter."""
  flat = flatten(tree)
  lines = [f'{t} {tuple(np.shape(flat[t]))} <- {", ".join(srcs)}'
           for t, srcs in applied.items() if t in flat]
  lines += [f'(dropped) {k}' for k in sorted(ignored)]
  return lines


def count(tree) -> int:
  return int(sum(np.size(v) for v in jax.tree_util.tree_leaves(tree)))
