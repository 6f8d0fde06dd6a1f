"""Shared fixtures: a tiny config and the real samples (skip when absent).

The suite compiles the same tiny programs many times (every `train` call
jits its init, step and evaluation again, and subprocess tests start from
nothing), so it runs with JAX's persistent compilation cache in a fresh
directory of its own: a program compiled once is loaded the next time, in
this process and in the subprocesses (which inherit the environment). The
programs and their results are the same; only compile time is saved. Set
JAXLM_TEST_NO_XLA_CACHE=1 to run without it. Under pytest-xdist (`make
test` runs two workers) the controller sets the cache up first and the
workers inherit its environment, so they share one cache.
"""

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
REAL_SAMPLES = ROOT.parent / 'shared' / 'data' / 'real_samples'


def _compilation_cache():
  if os.environ.get('JAXLM_TEST_NO_XLA_CACHE') or os.environ.get(
      'JAX_COMPILATION_CACHE_DIR'):
    return
  import jax  # pylint: disable=g-import-not-at-top
  cache = tempfile.mkdtemp(prefix='jaxlm-test-xla-cache-')
  atexit.register(shutil.rmtree, cache, ignore_errors=True)
  os.environ['JAX_COMPILATION_CACHE_DIR'] = cache
  os.environ['JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS'] = '0.1'
  jax.config.update('jax_compilation_cache_dir', cache)
  jax.config.update('jax_persistent_cache_min_compile_time_secs', 0.1)


_compilation_cache()


@pytest.fixture
def real_samples():
  if not REAL_SAMPLES.is_dir():
    pytest.skip('../shared/data/real_samples is not present in this clone')
  return REAL_SAMPLES


# The sizes of a very small TUFA (`configs/tufa_demo.py` otherwise), as
# command-line overrides: tests that go through argv pass them as they are.
TINY_TUFA_ARGS = ['--config.model.variant=Ti/16:depth=1',
                  '--config.model.decoder_layers=2',
                  '--config.model.decoder_mlp=64',
                  '--config.model.head_hidden=32',
                  '--config.data.num_anchors=8']


def tiny_config(steps=4, image_size=64):
  """A very small TUFA on synthetic faces, for fast end-to-end tests."""
  from jaxlm.config import apply_overrides, load_config, parse_override_args
  c = load_config(str(ROOT / 'configs' / 'tufa_demo.py'))
  apply_overrides(c, parse_override_args(TINY_TUFA_ARGS))
  return _small_run(c, steps, image_size)


def _small_run(c, steps, image_size):
  """Few faces, small batches, a checkpoint every 2 steps."""
  c.data.image_size = image_size
  c.data.mean_shape_samples = 16
  c.data.threads = 1
  for e in c.data.eval.values():
    e.size = 6
  c.train.batch_size = 4
  c.train.steps = steps
  c.train.log_every = 1
  c.train.checkpoint_every = 2
  c.optim.warmup_steps = 0
  c.eval.batch_size = 4
  c.eval.overlays = 2
  return c


@pytest.fixture
def tiny():
  return tiny_config


def tiny_slpt_config(name='slpt', steps=4, image_size=64):
  """A very small SLPT / DSLPT on synthetic syn29 faces."""
  from jaxlm.config import load_config
  c = load_config(str(ROOT / 'configs' / 'slpt_demo.py') + ':' + name)
  c.model.variant = 'vit:Ti/16:depth=1'
  c.model.width = 64
  c.model.num_heads = 2
  c.model.num_layers = 2
  c.model.mlp_dim = 64
  c.model.patch = 3
  return _small_run(c, steps, image_size)


@pytest.fixture
def tiny_slpt():
  return tiny_slpt_config
