"""Evaluation during training (`train.eval_every`), by `jaxlm eval`'s code.

Every `train.eval_every` steps and after the last, the loop calls an
`Evaluator` with the state's variables (the EMA where the run keeps one,
as `jaxlm eval` reads a checkpoint). For each `data.eval` dataset it
returns the NME, FR and AUC that `jaxlm eval` would write for a checkpoint
of that state (`evaluate.prompts_for`, `evaluate.predict_faces`,
`metrics.summarize`: the same functions) and a grid of `eval.overlays`
faces (prediction green, ground truth red). NME is in original-image
pixels / the normaliser (`evaluate`'s coordinate conventions).

Compiled once: the predict function is jitted when the Evaluator is made
and is always called with the same shapes and shardings: the variables
replicated over the training mesh (one more copy of the parameters while
it runs, as `inference.Predictor` holds them), the images a fixed batch of
`eval.batch_size` rounded up to a multiple of the data-parallel devices,
split over the mesh's batch axes; the results replicated.

Multi-process: every process reads every eval face and makes the same
calls (the jitted ones are collective), so every process computes the same
numbers; only the primary one writes them (the loop's `MetricWriter`).
"""

from __future__ import annotations

import jax
import numpy as np

from jaxlm import evaluate, inference, metrics, plots
from jaxlm import layouts as layouts_lib
from jaxlm.data import sources
from jaxlm.errors import JaxlmError
from jaxlm.train import sharding

# The per-dataset numbers logged as eval/<dataset>/<name>; the names
# `train.best_metric` may use.
METRICS = ('nme', 'fr', 'auc')


def _local(tree):
  """A tree of replicated arrays as this process's NumPy copies (works in
  multi-process runs, where the arrays are not fully addressable)."""
  return jax.tree_util.tree_map(
      lambda a: np.asarray(a.addressable_data(0)), tree)


def check_settings(config):
  """`train.eval_every` must be >= 0 (0: off) with a `data.eval` dataset
  when on; `train.best_metric` '' or 'eval/<data.eval dataset>/<one of
  METRICS>', with `train.eval_every` > 0. JaxlmError naming the key."""
  every = int(config.train.get('eval_every', 0))
  names = list(config.data.get('eval', {}))
  if every < 0:
    raise JaxlmError(f'config key train.eval_every: {every} is negative '
                     f'(0: off)')
  if every and not names:
    raise JaxlmError('config key train.eval_every: data.eval has no dataset '
                     'to evaluate')
  metric = config.train.get('best_metric', '')
  if not metric:
    return
  parts = metric.split('/')
  if (len(parts) != 3 or parts[0] != 'eval' or parts[1] not in names or
      parts[2] not in METRICS):
    raise JaxlmError(
        f'config key train.best_metric={metric!r}: expected '
        f'eval/<dataset>/<{"|".join(METRICS)}> with a data.eval dataset '
        f'({", ".join(names) or "none"})')
  if not every:
    raise JaxlmError(f'config key train.best_metric={metric!r} needs '
                     f'train.eval_every > 0 (its value is measured then)')


class Evaluator:
  """(variables on the training mesh) -> (scalars {'eval/<dataset>/nme|fr|
  auc': float}, overlay grids {'eval/<dataset>/overlays': (H, W, 3)
  uint8}) for the config's `data.eval` datasets."""

  def __init__(self, config, model, family, datasets, mesh):
    check_settings(config)
    self.config, self.model, self.family = config, model, family
    self.datasets = list(datasets)
    self.size = config.data.image_size
    self.data_dir = config.data.get('data_dir', '')
    devices = mesh.shape['data'] * mesh.shape['fsdp']
    self.batch_size = -(-config.eval.batch_size // devices) * devices
    replicated = sharding.replicated(mesh)
    self._batch_sharding = sharding.batch_sharding(mesh)
    self._replicated = replicated
    self._replicate = jax.jit(lambda v: v, out_shardings=replicated)
    self._predict = jax.jit(
        inference.make_predict(model, family, with_uncertainty=False),
        out_shardings=replicated)
    self.entries = []  # (name, entry config, layout, source)
    for name, ecfg in config.data.eval.items():
      source = sources.eval_source(
          sources.make_source(name, ecfg, self.size, self.data_dir))
      if not len(source):
        raise JaxlmError(f'config key data.eval.{name}: the dataset has no '
                         f'faces to evaluate')
      self.entries.append((name, ecfg, layouts_lib.get(ecfg.layout),
                           source))
    self._zero_shot = {}  # name -> (prompts, baseline): fixed by the data

  def _prompts(self, name, ecfg, variables):
    """(prompts, baseline) of one dataset: `jaxlm eval`'s `prompts_for`,
    on this process's copy of the variables (zero-shot ones once)."""
    if name in self._zero_shot:
      return self._zero_shot[name]
    prompts, baseline, zero_shot = evaluate.prompts_for(
        name, ecfg, self.model, self.family, _local(variables),
        self.datasets, self.size, self.config.data.mean_shape_samples,
        self.data_dir)
    if zero_shot:
      self._zero_shot[name] = (prompts, baseline)
    return prompts, baseline

  @staticmethod
  def _global(a, where):
    """The same array in every process -> one array placed by `where`."""
    a = np.asarray(a)
    return jax.make_array_from_callback(a.shape, where, lambda i: a[i])

  def _predict_local(self, variables, images, prompts):
    """`evaluate.predict_faces`'s predict: the same full batch in every
    process, split over the mesh; this process's copy of the result."""
    out = self._predict(variables,
                        self._global(images, self._batch_sharding), prompts)
    return (_local(out[0]),)

  def __call__(self, variables) -> tuple[dict, dict]:
    variables = self._replicate(variables)
    ecfg_all = self.config.eval
    scalars, images = {}, {}
    for name, ecfg, layout, source in self.entries:
      prompts, baseline = self._prompts(name, ecfg, variables)
      faces = evaluate.predict_faces(
          self._predict_local, variables, source,
          self._global(prompts, self._replicated), baseline, self.size,
          self.batch_size, layout, ecfg_all.overlays, progress=False)
      norm = metrics.normaliser(faces.gt, layout, ecfg.get(
          'normaliser', ecfg_all.normaliser), faces.boxes)
      nmes = metrics.nme(faces.pred, faces.gt, norm, faces.has_position)
      drawn = faces.overlays
      summary = metrics.summarize(nmes, ecfg_all.fr_alpha)
      for k in METRICS:
        scalars[f'eval/{name}/{k}'] = summary[k]
      if drawn:
        images[f'eval/{name}/overlays'] = plots.tile(drawn)
    return scalars, images
