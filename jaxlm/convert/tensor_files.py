"""Reading PyTorch weight files: .pth/.pt/.bin (torch) and .safetensors.

`read_tensors(path)` -> {key: numpy array}. PyTorch files are read with
`torch.load(weights_only=True)`, which refuses to unpickle anything but
tensors and plain containers: a file that would run code is an error, never
executed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from jaxlm.errors import ConversionError



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
  if not path.stat().st_size:
    raise ConversionError(f'{path}: empty file (0 bytes)')
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
    text = str(e) or type(e).__name__
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
