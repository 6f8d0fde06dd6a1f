"""A model family as one record: what the rest of jaxlm may know of it.

The trainer, evaluator, predictor, converters, CLI and benchmarks never test
which model they hold; they look its `Family` up in `models.FAMILIES` (by the
config's `model.name`) and call these hooks. A new family is one module
under `jaxlm/models/` that defines its Flax module and a `FAMILY` record,
plus one line in `models/__init__.py`.

Every family's module follows one API:

  module(images, prompts=None, *, point_index=None, train=False) -> outputs
    images: (B, H, W, 3) RGB in [0, 255] (uint8 or float);
    point_index: (B, N) int global indices of the landmarks to predict, into
      the training datasets' concatenated point tables (training);
    prompts: (N, D) or (B, N, D), D the family's `prompt_dim`: in [0, 1]
      crop units (D = 2), the positions a family starts from or is prompted
      with (inference; families that regress a fixed layout only check N),
      or points of the canonical 3D face (D = 3, the 3D-query family);
  module.dataset_prompts(name) -> (N, D): the prompts that predict training
    dataset `name`'s layout (its aligned mean shape, or its query table).

Variables: `params` (trained), `constants` (saved, never trained: the
training datasets' mean shapes, concatenated in dataset order, at
`mean_shape_path`, and the 3D-query family's query tables at
`query_table_path`), and `batch_stats` where the family has BatchNorm.
Outputs may be any pytree; `landmarks(outputs)` gives the final prediction
(B, N, 2) in [0, 1] crop units and `uncertainty(outputs)` (where the family
has one) the per-landmark standard deviation (B, N, 2) in the same units.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Sequence

import jax.numpy as jnp
import ml_collections

from jaxlm.errors import JaxlmError

DTYPES = {'float32': jnp.float32, 'bfloat16': jnp.bfloat16}

# (outputs, batch) -> (scalar loss, {metric name: scalar})
LossFn = Callable[[Any, dict], tuple[Any, dict]]


def compute_dtype(model_config):
  """The jnp dtype of `model.dtype` (parameters stay float32)."""
  if model_config.dtype not in DTYPES:
    raise JaxlmError(f'config key model.dtype: {model_config.dtype!r} is not '
                     f'one of {sorted(DTYPES)}')
  return DTYPES[model_config.dtype]


def _no_encoder(model_config):
  del model_config
  return None


@dataclasses.dataclass(frozen=True)
class Family:
  """One model family's hooks.

  Attributes:
    name: the `model.name` of its configs.
    defaults: () -> {model config key: default}: every key its `build`
      reads besides `name`; configs start from these (`default_config`),
      and run folders written before a key existed load with its default.
    build: (model config, datasets) -> the Flax module; `datasets` is
      ((name, num_points), ...) of the training datasets in table order.
      Raises JaxlmError naming the config key it cannot accept.
    loss: (module, layouts of the training datasets) -> LossFn. Batches
      carry `target` (B, N, 2) crop units and `weight` (B, N).
    landmarks: outputs -> (B, N, 2) final landmarks, crop units.
    uncertainty: outputs -> (B, N, 2) standard deviation, crop units; None
      for families without one.
    anchor_masking: trains on random subsets of `data.num_anchors` points
      per face (TUFA); otherwise `data.num_anchors` must be 0 (every point,
      in layout order).
    any_prompts: predicts prompts of any number of points (zero-shot
      shapes, TUFA); otherwise prompts must have the N points of the
      training layout.
    mean_shape_path: where in `constants` the concatenated mean shapes live.
    encoder: model config -> (params path, variant) of the encoder that
      `init.encoder` (a converted DINO or ConvNeXt checkpoint) initialises,
      or None.
    prompt_dim: 2 for prompts in crop units (N, 2); 3 for the 3D-query
      families, prompted with points of the canonical 3D face (N, 3)
      (`data/query_tables`): their zero-shot prompts are a layout's query
      table, not its 2D mean shape.
    query_table_path: where in `constants` the training layouts' 3D query
      tables (sum N_i, 3) live (the trainer fills it from
      `data.query_tables`), or None.
    pad_anchors: with anchor masking, a layout with fewer points than
      `data.num_anchors` is padded with weight-0 repeats (the 3D-query
      family, whose dense layout trains beside sparse ones); otherwise such a
      layout is a config error.
    describe: outputs -> what the model reports beside the landmarks
      (`predict --json`, the overlay), or None: dict(points={name: (B, K,
      2) crop units}, lengths={name: (B,) crop units}, values={name: (B,
      ...) arrays in their own units}); the predictor maps points and
      lengths to image pixels. The overlay draws every point set of three
      or more points as a closed polygon (an RoI) and a value named
      'rotation' (3, 3) as the head's axes (the canonical head frame's x, y,
      z; `plots.draw_description`); a name 'a/b' is key b of group a in
      the JSON and must not be a key the result already has.
  """
  name: str
  defaults: Callable[[], dict]
  build: Callable[[ml_collections.ConfigDict, tuple], Any]
  loss: Callable[[Any, Sequence[Any]], LossFn]
  landmarks: Callable[[Any], Any]
  uncertainty: Callable[[Any], Any] | None = None
  anchor_masking: bool = False
  any_prompts: bool = False
  mean_shape_path: tuple[str, ...] = ('mean_shape',)
  encoder: Callable[[ml_collections.ConfigDict], tuple | None] = _no_encoder
  prompt_dim: int = 2
  query_table_path: tuple[str, ...] | None = None
  pad_anchors: bool = False
  describe: Callable[[Any], dict] | None = None

  def default_config(self) -> ml_collections.ConfigDict:
    """The `model` section of a config of this family, with defaults."""
    return ml_collections.ConfigDict(dict(name=self.name, **self.defaults()))

  def complete(self, model_config) -> ml_collections.ConfigDict:
    """`model_config` with missing keys at their defaults; an unknown key is
    an error naming it."""
    given = dict(model_config)
    known = self.defaults()
    unknown = sorted(set(given) - set(known) - {'name'})
    if unknown:
      raise JaxlmError(f'config key model.{unknown[0]}: not a setting of '
                       f'model family {self.name!r} (known: '
                       f'{", ".join(sorted(known))})')
    return ml_collections.ConfigDict({**known, **given, 'name': self.name})

  def mean_shapes(self, constants):
    """The concatenated mean-shape table (sum N_i, 2) in `constants`."""
    return _get(constants, self.mean_shape_path)

  def with_mean_shapes(self, constants, table):
    """A copy of `constants` with the mean-shape table replaced."""
    return _put(constants, self.mean_shape_path, table)

  def with_query_table(self, constants, table):
    """A copy of `constants` with the 3D query table (sum N_i, 3) replaced
    (families with a `query_table_path`; others: unchanged)."""
    if self.query_table_path is None:
      return constants
    return _put(constants, self.query_table_path, table)

  def check_prompts(self, num_prompts: int, datasets, what: str):
    """JaxlmError naming `what` unless the family can predict
    `num_prompts` points."""
    n = sum(k for _, k in datasets)
    if not self.any_prompts and num_prompts != n:
      raise JaxlmError(f'{what}: {num_prompts} points, but model {self.name} '
                       f'predicts the {n} points of its training layout only')


def _get(tree, path):
  for key in path:
    tree = tree[key]
  return tree


def _put(tree, path, value):
  """A copy of nested dict `tree` with `value` at `path`."""
  out = dict(tree)
  out[path[0]] = value if len(path) == 1 else _put(tree[path[0]], path[1:],
                                                   value)
  return out
