"""Multi-process start-up: `jax.distributed.initialize` from the environment.

  - `launch/local.sh` with NUM_PROCESSES > 1 sets JAXLM_COORDINATOR,
    JAXLM_NUM_PROCESSES and JAXLM_PROCESS_ID (CPU collectives via gloo);
  - SLURM (SLURM_NTASKS > 1) and Cloud TPU pod slices need no arguments:
    `jax.distributed.initialize()` reads their environment.
A single process does nothing. Must run before anything touches devices.
"""

from __future__ import annotations

import logging
import os

import jax

log = logging.getLogger('jaxlm')

_done = False


def _on_tpu_pod() -> bool:
  hosts = os.environ.get('TPU_WORKER_HOSTNAMES', '')
  return ',' in hosts


def maybe_initialize() -> bool:
  """Initialises jax.distributed when the environment asks for it."""
  global _done
  if _done:
    return True
  env = os.environ
  n = int(env.get('JAXLM_NUM_PROCESSES', '1'))
  if n > 1:
    if env.get('JAX_PLATFORMS', '') in ('', 'cpu'):
      jax.config.update('jax_cpu_collectives_implementation', 'gloo')
    jax.distributed.initialize(
        coordinator_address=env['JAXLM_COORDINATOR'], num_processes=n,
        process_id=int(env['JAXLM_PROCESS_ID']))
  elif int(env.get('SLURM_NTASKS', '1')) > 1 or _on_tpu_pod():
    jax.distributed.initialize()
  else:
    return False
  _done = True
  log.info('process %d of %d; %d local / %d global devices',
           jax.process_index(), jax.process_count(), jax.local_device_count(),
           jax.device_count())
  return True


def is_primary() -> bool:
  return jax.process_index() == 0
