"""Query optimisation (paper 002 §4.2): the 3D query of a clicked pixel.

A user clicks K points of one face image (a mole, a marker dot); for each
we find the 3D query q_k whose prediction l(q_k) lands on the click, with
the networks frozen, by Adam on

  L(q) = sum_k ||l(q_k) - x*_k||²,  l and x* in [0, 1] crop units

(pixel / S of the model input), started from the nearest of a dense sample
of the canonical face C (`canonical.grid_uv`, all of it predicted in one
batched forward pass). The K queries are optimised together, as one prompt
set: the MLP predictor answers each query alone (K independent fits); the
transformer's queries see each other, as they do when the found set is
predicted later. The found (K, 3) queries then track those points on other
images of the face (`jaxlm predict --layout query.npy`).

Coordinates: queries in canonical 3D head coordinates (x right, y down,
z towards the camera, face half-width about 1); targets and predictions in
crop pixels of the model input ([0, S]) unless named image pixels, which map
to crop pixels through the crop's affine (`crop_image`, the rule of
`Predictor.detect`).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxlm.data import crop as crop_lib
from jaxlm.data.synthetic import canonical
from jaxlm.errors import JaxlmError
from jaxlm.inference import Predictor, crop_image, detect_face, load_image

log = logging.getLogger('jaxlm')

DEFAULT_STEPS = 150
DEFAULT_LR = 0.01  # canonical units (the grid spacing is ~0.02)
DEFAULT_GRID_STEP = 0.02  # ~5,000 starting points on C


class QueryFit(NamedTuple):
  """Optimised queries of K targets.

  queries: (K, 3) float32 canonical 3D queries found; start: (K, 3) the
    dense-sample points they started from.
  points: (K, 2) their predictions after the last step, crop pixels;
    targets: (K, 2) crop pixels.
  loss: (steps, K) squared error per target before each step, crop units².
  affine: (2, 3) image -> crop pixels (the identity for a crop given as is).
  """
  queries: np.ndarray
  start: np.ndarray
  points: np.ndarray
  targets: np.ndarray
  loss: np.ndarray
  affine: np.ndarray

  @property
  def residual(self) -> np.ndarray:
    """(K,) distance from prediction to target, crop pixels."""
    return np.linalg.norm(self.points - self.targets, axis=-1)

  def image_points(self) -> np.ndarray:
    """(K, 2) the final predictions in image pixels."""
    return crop_lib.apply_affine(crop_lib.invert_affine(self.affine),
                                 self.points).astype(np.float32)

  def image_residual(self) -> np.ndarray:
    """(K,) distance from prediction to the clicked point, image pixels."""
    inv = crop_lib.invert_affine(self.affine)
    return np.linalg.norm(crop_lib.apply_affine(inv, self.points) -
                          crop_lib.apply_affine(inv, self.targets), axis=-1)


def check_family(family):
  """JaxlmError unless the family is prompted with 3D queries."""
  if family.prompt_dim != 3:
    raise JaxlmError(f'query optimisation needs a 3D-query model (prompts '
                     f'of 3 canonical coordinates); model {family.name} is '
                     f'prompted with {family.prompt_dim}D points')


def candidate_queries(step: float = DEFAULT_GRID_STEP) -> np.ndarray:
  """(M, 3) float32 starting points: a grid of C's face region, on the
  surface (`canonical.grid_uv(step)`)."""
  return canonical.surface_queries(canonical.grid_uv(step)).canonical()


class QueryOptimizer:
  """The jitted fit of one model (reuse it for many images and targets).

  predictor: a `Predictor` (or anything with its `model`, `variables`,
  `family` and `size`); steps, lr: Adam's steps and peak learning rate
  (cosine decay to 1% of it); grid_step: the dense sample of C the fit
  starts from.
  """

  def __init__(self, predictor, steps: int = DEFAULT_STEPS,
               lr: float = DEFAULT_LR, grid_step: float = DEFAULT_GRID_STEP):
    check_family(predictor.family)
    if int(steps) < 1:
      raise JaxlmError(f'--steps {steps}: expected at least 1 step')
    self.predictor, self.steps = predictor, int(steps)
    self.candidates = jnp.asarray(candidate_queries(grid_step))
    model, family = predictor.model, predictor.family

    def landmarks(variables, image, q):
      """(K, 3) queries -> (K, 2) crop units on one image."""
      return family.landmarks(model.apply(variables, image[None], q))[0]

    def nearest(variables, image, targets):
      pts = landmarks(variables, image, self.candidates)
      d = ((targets[:, None] - pts[None]) ** 2).sum(-1)  # (K, M)
      return self.candidates[jnp.argmin(d, axis=1)]

    opt = optax.adam(optax.cosine_decay_schedule(lr, self.steps, 0.01))

    def loss(q, variables, image, targets):
      d = landmarks(variables, image, q) - targets
      per_target = (d * d).sum(-1)
      return per_target.sum(), per_target

    grad = jax.value_and_grad(loss, has_aux=True)

    def fit(variables, image, targets, q0):
      def step(carry, _):
        q, state = carry
        (_, per_target), g = grad(q, variables, image, targets)
        updates, state = opt.update(g, state, q)
        return (optax.apply_updates(q, updates), state), per_target

      (q, _), curve = jax.lax.scan(step, (q0, opt.init(q0)), None,
                                   length=self.steps)
      return q, landmarks(variables, image, q), curve

    self._nearest = jax.jit(nearest)
    self._fit = jax.jit(fit)

  def __call__(self, image, targets, start=None) -> QueryFit:
    """Fits the queries of `targets` on one model input.

    Args:
      image: (S, S, 3) uint8 RGB, the model input (a crop).
      targets: (K, 2) crop pixels (or (2,)).
      start: (K, 3) canonical queries to start from (default: the nearest
        prediction of the dense sample of C).
    """
    size = self.predictor.size
    image = np.asarray(image)
    if image.shape != (size, size, 3):
      raise JaxlmError(f'image of shape {image.shape}: the model input is '
                       f'({size}, {size}, 3); crop it first (crop_image)')
    t = np.asarray(targets, np.float64).reshape(-1, 2)
    if not len(t) or not np.all(np.isfinite(t)):
      raise JaxlmError(f'targets {t.tolist()}: expected finite (K, 2) crop '
                       f'pixels')
    outside = ~np.all((t >= 0) & (t <= size), axis=-1)
    if outside.any():
      raise JaxlmError(f'point {t[outside][0].round(1).tolist()} lies '
                       f'outside the model input (0..{size} crop pixels)')
    variables = self.predictor.variables
    target = jnp.asarray(t / size, jnp.float32)
    if start is None:
      q0 = self._nearest(variables, image, target)
    else:
      q0 = jnp.asarray(np.asarray(start, np.float32).reshape(len(t), 3))
    q, pts, curve = self._fit(variables, image, target, q0)
    return QueryFit(queries=np.asarray(q, np.float32),
                    start=np.asarray(q0, np.float32),
                    points=np.asarray(pts, np.float64) * size,
                    targets=t, loss=np.asarray(curve),
                    affine=np.array([[1.0, 0, 0], [0, 1.0, 0]]))

  def fit_image(self, image_rgb, points, box=None, crop=True) -> QueryFit:
    """Fits the queries of clicks `points` (K, 2) in image pixels: the
    image is cropped as `Predictor.detect` crops it (`crop_image`)."""
    x, m, _ = crop_image(image_rgb, self.predictor.size, box, crop)
    p = np.asarray(points, np.float64).reshape(-1, 2)
    return self(x, crop_lib.apply_affine(m, p))._replace(affine=m)


def optimise_queries(predictor, image, targets, steps: int = DEFAULT_STEPS,
                     start=None, **kwargs) -> QueryFit:
  """One fit (see `QueryOptimizer`): `image` the (S, S, 3) model input,
  `targets` (K, 2) crop pixels."""
  return QueryOptimizer(predictor, steps, **kwargs)(image, targets, start)


def parse_point(text: str) -> tuple[float, float]:
  """'x,y' -> two floats, or JaxlmError."""
  try:
    p = tuple(float(v) for v in text.split(','))
  except ValueError:
    p = ()
  if len(p) != 2:
    raise JaxlmError(f'--point {text!r}: expected x,y in image pixels')
  return p


def query_file(checkpoint, image_path, points, out, *, box=None,
               crop: str = 'face', steps: int = DEFAULT_STEPS) -> dict:
  """`jaxlm query`: the 3D queries of clicked image points, written as an
  (K, 3) float32 .npy that `jaxlm predict --layout` takes.

  Args:
    checkpoint: a run folder (or a step folder) of a 3D-query family.
    points: (K, 2) clicks in image pixels (or ['x,y', ...]).
    out: the .npy to write.
    box: (x0, y0, x1, y1) face box, image pixels (default: Haar cascade);
      crop: 'face' or 'none' (the image is the model input), as `jaxlm
      predict`.

  Returns:
    {'queries' (K, 3), 'points' (K, 2) clicks, 'predicted' (K, 2) and
    'residual' (K,) image pixels, 'start_residual' (K,) image pixels of the
    dense sample's best point, 'box', 'out'}.
  """
  if crop not in ('face', 'none'):
    raise JaxlmError(f'--crop {crop!r}: expected "face" or "none"')
  clicks = np.array([parse_point(p) if isinstance(p, str) else p
                     for p in points], np.float64).reshape(-1, 2)
  image = load_image(image_path)
  pred = Predictor(checkpoint)
  opt = QueryOptimizer(pred, steps)
  if crop == 'face' and box is None:
    box = detect_face(image)
  found = opt.fit_image(image, clicks, box=box, crop=crop == 'face')
  out = Path(out)
  try:
    out.parent.mkdir(parents=True, exist_ok=True)
    np.save(out, found.queries.astype(np.float32))
  except OSError as e:
    raise JaxlmError(f'cannot write {out}: {e.strerror or e}') from None
  log.info('wrote %s (%d queries)', out, len(found.queries))
  start = pred.detect(image, found.start, box=box, crop=crop == 'face')
  far = found.image_residual() > 2.0
  if far.any():
    log.warning('%d of %d points stay more than 2 px from the click: the '
                'model predicts no query there', far.sum(), len(far))
  return dict(queries=found.queries.tolist(), points=clicks.tolist(),
              predicted=found.image_points().tolist(),
              residual=found.image_residual().tolist(),
              start_residual=np.linalg.norm(start['landmarks'] - clicks,
                                            axis=-1).tolist(),
              box=None if box is None else [float(v) for v in box],
              out=str(out))
