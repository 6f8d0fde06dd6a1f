r"""Why the infinite3d pose is not learned: the offsets δ and the pose head
race to fit the same 2D error (issue 14).

  python benchmarks/infinite3d_pose_race.py --offsets on --offset-scale 1.0
  python benchmarks/infinite3d_pose_race.py --offsets on --offset-scale 0.1
  python benchmarks/infinite3d_pose_race.py --offsets off

The real `Infinite3D` (pose/camera head, predictor P, its loss), with no
spatial transformer, on tightly framed syn98 faces (64 px; 1024 training
faces, 128 held out), except that the feature extractor F is replaced by a
3-layer MLP on the true 2D landmarks (written into the image's first rows
and read back): f then can know the pose, so what is measured is whether
the heads learn it, not whether a small CNN learns to see it. `--offsets
off` zeroes P's offset outputs (the pose and camera must fit the
landmarks). Prints every fifth of the run: the held-out geodesic pose error
(degrees, against the frontal guess), yaw/pitch/roll MAE, the landmark
error (screen units) and the offsets' rms (all, and across faces).
"""

from __future__ import annotations

import argparse
import time

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxlm import models
from jaxlm.data.synthetic import SyntheticFaces, canonical
from jaxlm.models import head3d, infinite3d, queries3d

S = 64


def faces(n, seed):
  ds = SyntheticFaces('syn98', n, seed=seed, image_size=S)
  y = np.stack([ds[i]['landmarks'] / S for i in range(n)]).astype(np.float32)
  r = np.stack([ds.geometry(i).rotation for i in range(n)])
  x = np.zeros((n, S, S, 3), np.float32)  # the landmarks, screen units
  flat = np.pad((2 * y - 1).reshape(n, -1), ((0, 0), (0, 4 * S - 196)))
  x[:, :4, :, 0] = flat.reshape(n, 4, S)
  return x, y, r


class Oracle(nn.Module):
  """F: the landmarks in the image's first rows -> f (B, 256)."""

  @nn.compact
  def __call__(self, crop, train=False):
    v = crop[:, :4, :, 0].reshape(crop.shape[0], -1)
    h = nn.gelu(nn.Dense(256)(v))
    h = nn.gelu(nn.Dense(256)(h))
    return nn.LayerNorm()(nn.Dense(256)(h))


def geodesic(r1, r2):
  c = (np.trace(np.swapaxes(r1, -1, -2) @ r2, axis1=-2, axis2=-1) - 1) / 2
  return np.degrees(np.arccos(np.clip(c, -1, 1)))


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  p.add_argument('--offsets', choices=('on', 'off'), default='on')
  p.add_argument('--offset-scale', type=float, default=0.1)
  p.add_argument('--offset-prior', type=float, default=0.01)
  p.add_argument('--steps', type=int, default=1000)
  p.add_argument('--lr', type=float, default=5e-4)
  p.add_argument('--batch', type=int, default=16)
  args = p.parse_args(argv)
  xt, yt, _ = faces(1024, 1)
  xv, yv, rv = faces(128, 99)
  queries3d.extractor = lambda *a, **k: Oracle()
  if args.offsets == 'off':
    predict = infinite3d.predict_queries
    infinite3d.predict_queries = lambda *a: predict(*a).at[..., :3].set(0.0)
  table = canonical.layout_queries('syn98').canonical()
  c = models.get('infinite3d').default_config()
  c.predictor, c.predictor_width, c.crop_size, c.stn = 'mlp', 256, S, 'none'
  c.offset_prior, c.offset_scale = args.offset_prior, args.offset_scale
  m = models.build(c, (('syn98', 98),))
  v = dict(models.init_variables(m, jax.random.key(0), S, 4))
  v['constants'] = models.get('infinite3d').with_query_table(
      v['constants'], jnp.asarray(table))
  params, rest = v.pop('params'), v
  loss_fn = models.get('infinite3d').loss(m, ())
  opt = optax.chain(optax.clip_by_global_norm(1.0), optax.adamw(
      optax.warmup_cosine_decay_schedule(0, args.lr, 100, args.steps),
      weight_decay=1e-4))
  state = opt.init(params)
  index = jnp.tile(jnp.arange(98)[None], (args.batch, 1))

  def loss(pr, x, y):
    out = m.apply(dict(rest, params=pr), x, point_index=index, train=True)
    return loss_fn(out, dict(target=y, weight=jnp.ones(index.shape)))

  @jax.jit
  def step(pr, state, x, y):
    (_, met), g = jax.value_and_grad(loss, has_aux=True)(pr, x, y)
    u, state = opt.update(g, state, pr)
    return optax.apply_updates(pr, u), state, met

  @jax.jit
  def evaluate(pr, x):
    o = m.apply(dict(rest, params=pr), x, jnp.asarray(table))
    return o['landmarks'], o['head_rotation'], o['offset']

  print(f'offsets {args.offsets}, offset_scale {args.offset_scale}, '
        f'offset_prior {args.offset_prior}, {args.steps} steps')
  print('| step | geodesic ° | frontal guess ° | yaw / pitch / roll MAE ° | '
        'landmark error (screen) | δ rms | δ rms across faces |')
  print('|---|---|---|---|---|---|---|')
  rng = np.random.default_rng(0)
  t0 = time.time()
  for k in range(args.steps + 1):
    b = rng.integers(0, len(xt), args.batch)
    params, state, _ = step(params, state, jnp.asarray(xt[b]),
                            jnp.asarray(yt[b]))
    if k % max(args.steps // 5, 1) == 0 or k == args.steps:
      lm, r, off = map(np.asarray, evaluate(params, jnp.asarray(xv)))
      mae = np.abs(np.asarray(head3d.euler_angles(jnp.asarray(r))) -
                   np.asarray(head3d.euler_angles(jnp.asarray(rv)))).mean(0)
      err = 2 * np.linalg.norm(lm - yv, axis=-1).mean()
      rms = np.sqrt((off ** 2).sum(-1).mean())
      across = np.sqrt(((off - off.mean(0)) ** 2).sum(-1).mean())
      print(f'| {k} | {geodesic(r, rv).mean():.2f} | '
            f'{geodesic(np.eye(3), rv).mean():.2f} | '
            f'{" / ".join(f"{a:.1f}" for a in mae)} | {err:.3f} | '
            f'{rms:.3f} | {across:.3f} |', flush=True)
  print(f'({time.time() - t0:.0f} s)')


if __name__ == '__main__':
  main()
