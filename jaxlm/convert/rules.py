"""Renaming and reshaping source tensors into jaxlm parameters.

A converter declares one rule per target parameter (`Rules.add`: target
path, the source keys it consumes, and a function of those arrays). Every
source key must be consumed by a rule or listed as ignored, and every rule's
sources must exist: leftovers on either side are errors naming the keys.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Iterable

import numpy as np

from jaxlm.checkpoints import flatten
from jaxlm.errors import ConversionError


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


def mapping_lines(applied: dict, tree: dict, ignored=()) -> list[str]:
  """'target (shape) <- source[, source]' for every converted parameter."""
  flat = flatten(tree)
  lines = [f'{t} {tuple(np.shape(flat[t]))} <- {", ".join(srcs)}'
           for t, srcs in applied.items() if t in flat]
  lines += [f'(dropped) {k}' for k in sorted(ignored)]
  return lines
