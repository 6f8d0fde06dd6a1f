"""Materialisation points: where a network's activations must be written to
memory once, as they are, instead of being recomputed inside their consumers.

XLA fuses elementwise chains (BatchNorm's normalise-scale-shift, ReLU,
additions, bilinear upsampling) into the operations that read them. When
the reader is a convolution or a reduction that visits each element many
times, XLA:CPU evaluates the fused chain once per visit: HRNet's fuse
layers, whose sums of upsampled branches feed both the next module's 3x3
convolutions and BatchNorm's batch statistics, cost several times their
arithmetic that way. `materialize` wraps values in
`jax.lax.optimization_barrier`, which XLA may not fuse across, so each
value is computed once. Numbers are unchanged: the barrier is an identity.

XLA:CPU's own pipeline deletes optimisation barriers (its
`cse_barrier_expander` pass, which also undoes `jax.checkpoint`'s), so the
barrier only holds in a step compiled with `CPU_COMPILER_OPTIONS`
(`train/step.py`'s `jit_step` passes them on CPU). Elsewhere the barrier is
kept by XLA as it is.
"""

from __future__ import annotations

import jax

# XLA compiler options under which barriers survive on XLA:CPU
CPU_COMPILER_OPTIONS = {'xla_disable_hlo_passes': 'cse_barrier_expander'}


def materialize(tree):
  """`tree` unchanged, computed once where it stands (an identity that XLA
  may not fuse across; see the module docstring)."""
  return jax.lax.optimization_barrier(tree)
