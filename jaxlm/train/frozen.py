"""Frozen parameters (`train.frozen`): kept bit-identical, with no gradient
and no optimizer state (LensMaster's frozen DINOv3 backbone, paper 000).

`train.frozen` is a tuple of parameter-path patterns, usable by every
family. A path is the '/'-joined key path of a leaf of `params`
(`encoder/blocks_3/qkv/kernel`); a pattern matches the leaf itself or any
leaf below it, with `fnmatch` wildcards (`encoder`, `encoder/blocks_[0-8]`,
`*/bn*`). Patterns apply in order; one starting with '!' unfreezes what it
matches, so `('encoder', '!encoder/blocks_11', '!encoder/norm')` fine-tunes
the encoder's last block and final norm only. A pattern that matches no
parameter is a config error naming it (a typo would otherwise silently
train everything).

What freezing does in the step (`train/step.py`): the frozen leaves go into
the loss through `stop_gradient` (XLA then drops the backward pass of a
frozen prefix of the network: the encoder's backward is not computed), the
optimizer is `optax.multi_transform` with `set_to_zero` for them (no Adam
moments are stored), and the new state takes the old frozen leaves as they
were (not `p + 0`, not an EMA of equal values), so they stay bit-identical.
BatchNorm statistics (`batch_stats`) are not parameters: a frozen
convolutional backbone still updates its running statistics in training
mode (as PyTorch does unless the module is put in eval mode).
"""

from __future__ import annotations

import fnmatch

import jax

from jaxlm.errors import JaxlmError

TRAINED, FROZEN = 'trained', 'frozen'


def param_path(key_path) -> str:
  """'/'-joined names of a `jax.tree_util` key path."""
  return '/'.join(str(getattr(k, 'key', getattr(k, 'idx', k)))
                  for k in key_path)


def _matches(path: str, pattern: str) -> bool:
  return fnmatch.fnmatchcase(path, pattern) or fnmatch.fnmatchcase(
      path, pattern.rstrip('/') + '/*')


def frozen_mask(params, patterns):
  """A tree like `params` of bools (True: frozen) for `train.frozen`
  `patterns`; JaxlmError naming a pattern that matches nothing."""
  patterns = tuple(patterns)
  leaves, treedef = jax.tree_util.tree_flatten_with_path(params)
  paths = [param_path(p) for p, _ in leaves]
  frozen = [False] * len(paths)
  for pattern in patterns:
    if not isinstance(pattern, str) or not pattern.lstrip('!'):
      raise JaxlmError(f'config key train.frozen: {pattern!r} is not a '
                       f'parameter path pattern (e.g. "encoder")')
    unfreeze = pattern.startswith('!')
    body = pattern[1:] if unfreeze else pattern
    hit = [i for i, p in enumerate(paths) if _matches(p, body)]
    if not hit:
      tops = sorted({p.split('/')[0] for p in paths})
      raise JaxlmError(f'config key train.frozen: {pattern!r} matches no '
                       f'parameter (top-level parameters: {", ".join(tops)})')
    for i in hit:
      frozen[i] = not unfreeze
  return jax.tree_util.tree_unflatten(treedef, frozen)


def labels(params, patterns):
  """The `optax.multi_transform` labels (TRAINED / FROZEN) of `params`."""
  return jax.tree_util.tree_map(lambda f: FROZEN if f else TRAINED,
                                frozen_mask(params, patterns))


def keep_frozen(mask, new, old):
  """`new` with the frozen leaves taken from `old` (bit-identical)."""
  return jax.tree_util.tree_map(lambda f, n, o: o if f else n, mask, new,
                                old)


def stop_frozen_gradients(mask, params):
  """`params` with `stop_gradient` on the frozen leaves."""
  return jax.tree_util.tree_map(
      lambda f, p: jax.lax.stop_gradient(p) if f else p, mask, params)


def count(mask, params) -> tuple[int, int]:
  """(frozen, total) numbers of parameters."""
  sizes = [(f, p.size) for f, p in zip(jax.tree_util.tree_leaves(mask),
                                       jax.tree_util.tree_leaves(params))]
  return sum(n for f, n in sizes if f), sum(n for _, n in sizes)
