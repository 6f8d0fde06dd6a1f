r"""Attention forward and backward on this machine: jaxlm's `attend` against
the other ways to write it, and against torch.

  python benchmarks/attention_cpu.py                    # ViT-S/16, batch 8
  python benchmarks/attention_cpu.py --shape 8,98,98,256,8   # SLPT's decoder
  python benchmarks/attention_cpu.py --shape 8,98,256,384,6 --rounds 20

`--shape B,T,S,C,heads`: queries (B, T, C), keys and values (B, S, C). Each
row is one way of computing softmax(q k^T / sqrt(C / heads)) v, timed
forward alone and forward + backward (the gradients of q, k and v for a
random cotangent), medians of `--rounds` calls; JAX's rows jitted with the
compiler options of jaxlm's training step. Every row also prints its
largest difference from the first one (outputs and gradients):

- `per-head`: `attention.attend_per_head`, what `attend` runs on CPUs (one
  head at a time, products batched over B, softmax gradient written out);
- `per-head, jax.nn.softmax`: the same with autodiff's softmax gradient;
- `heads-first`: (B, heads, T, S) products batched over (B, heads) and
  `jax.nn.softmax`, written here as a baseline (what `attend` ran on CPUs
  between commits 2aaba9b and 61a8036);
- `fused`: `attention.fused_attention` (`jax.nn.dot_product_attention`,
  what `attend` runs on GPUs and TPUs);
- `torch`: the official DINO ViT's `(q @ k^T * scale).softmax(-1) @ v`,
  and `torch sdpa`: `scaled_dot_product_attention` (when torch imports).
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

from jaxlm.models.attention import attend_per_head, fused_attention
from jaxlm.models.materialize import CPU_COMPILER_OPTIONS


def heads_first(q, k, v, num_heads):
  b, t, c = q.shape
  s, h = k.shape[1], c // num_heads
  heads = lambda x, n: x.reshape(b, n, num_heads, h).transpose(0, 2, 1, 3)
  logits = jnp.matmul(heads(q, t), heads(k, s).swapaxes(-1, -2),
                      preferred_element_type=jnp.float32) * (h ** -0.5)
  p = jax.nn.softmax(logits, axis=-1).astype(v.dtype)
  return (p @ heads(v, s)).transpose(0, 2, 1, 3).reshape(b, t, c)


def median_ms(fn, rounds):
  fn()
  times = []
  for _ in range(rounds):
    t = time.perf_counter()
    fn()
    times.append(time.perf_counter() - t)
  return 1e3 * float(np.median(times))


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  p.add_argument('--shape', default='8,257,257,384,6',
                 help='B,T,S,C,heads (default: ViT-S/16 at 256 px, batch 8)')
  p.add_argument('--rounds', type=int, default=15)
  a = p.parse_args(argv)
  b, t, s, c, nh = map(int, a.shape.split(','))
  rng = np.random.default_rng(0)
  q, k, v, ct = (jnp.asarray(rng.standard_normal(shape, np.float32))
                 for shape in ((b, t, c), (b, s, c), (b, s, c), (b, t, c)))
  print(f'jax {jax.__version__} on {jax.devices()[0].device_kind}; '
        f'B={b} T={t} S={s} C={c} heads={nh}, float32')
  options = CPU_COMPILER_OPTIONS if jax.default_backend() == 'cpu' else None
  compile_ = lambda fn, *args: jax.jit(fn).lower(*args).compile(options)
  reference = None
  autodiff_softmax = lambda q, k, v, nh: attend_per_head(
      q, k, v, nh, softmax=lambda x: jax.nn.softmax(x, axis=-1))
  for name, f in (('per-head', attend_per_head),
                  ('per-head, jax.nn.softmax', autodiff_softmax),
                  ('heads-first', heads_first), ('fused', fused_attention)):
    forward = lambda q, k, v, f=f: f(q, k, v, nh)

    def both(q, k, v, ct, forward=forward):
      out, vjp = jax.vjp(forward, q, k, v)
      return out, vjp(ct)

    fwd, fwd_bwd = compile_(forward, q, k, v), compile_(both, q, k, v, ct)
    out = jax.tree.leaves(fwd_bwd(q, k, v, ct))
    reference = reference or out
    diff = max(float(jnp.abs(x - y).max()) for x, y in zip(out, reference))
    ms_f = median_ms(lambda: jax.block_until_ready(fwd(q, k, v)), a.rounds)
    ms_b = median_ms(lambda: jax.block_until_ready(fwd_bwd(q, k, v, ct)),
                     a.rounds)
    print(f'{name:24s} forward {ms_f:7.2f} ms | forward+backward '
          f'{ms_b:7.2f} ms | max diff {diff:.1e}')
  try:
    import torch  # pylint: disable=g-import-not-at-top
  except ImportError:
    return
  h = c // nh
  tq, tk, tv, tct = (torch.tensor(np.asarray(x)) for x in (q, k, v, ct))
  split = lambda x, n: x.reshape(b, n, nh, h).permute(0, 2, 1, 3)

  def torch_attention(q, k, v, sdpa):
    if sdpa:
      out = torch.nn.functional.scaled_dot_product_attention(
          split(q, t), split(k, s), split(v, s))
    else:
      out = ((split(q, t) @ split(k, s).transpose(-2, -1)) * h**-0.5
             ).softmax(-1) @ split(v, s)
    return out.transpose(1, 2).reshape(b, t, c)

  for name, sdpa in (('torch', False), ('torch sdpa', True)):
    def forward(sdpa=sdpa):
      with torch.no_grad():
        torch_attention(tq, tk, tv, sdpa)

    def both(sdpa=sdpa):
      args = [x.clone().requires_grad_() for x in (tq, tk, tv)]
      out = torch_attention(*args, sdpa)
      out.backward(tct)
      return [out.detach()] + [x.grad for x in args]

    diff = max(float(np.abs(x.numpy() - np.asarray(y)).max())
               for x, y in zip(both(), reference))
    print(f'{name:24s} forward {median_ms(forward, a.rounds):7.2f} ms | '
          f'forward+backward {median_ms(both, a.rounds):7.2f} ms | '
          f'max diff {diff:.1e} ({torch.get_num_threads()} threads)')


if __name__ == '__main__':
  main()
