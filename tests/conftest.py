"""Shared fixtures: a tiny config and the real samples (skip when absent)."""

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
REAL_SAMPLES = ROOT.parent / 'shared' / 'data' / 'real_samples'


@pytest.fixture
def real_samples():
  if not REAL_SAMPLES.is_dir():
    pytest.skip('../shared/data/real_samples is not present in this clone')
  return REAL_SAMPLES


def tiny_config(steps=4, image_size=64):
  """A very small TUFA on synthetic faces, for fast end-to-end tests."""
  from jaxlm.config import load_config
  c = load_config(str(ROOT / 'configs' / 'tufa_demo.py'))
  c.model.variant = 'Ti/16:depth=1'
  c.model.decoder_layers = 2
  c.model.decoder_mlp = 64
  c.model.head_hidden = 32
  c.data.num_anchors = 8
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
