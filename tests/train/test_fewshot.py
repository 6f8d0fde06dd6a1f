"""Few-shot transfer (§6.2.4): pretrained weights, fresh offsets, few faces."""

import numpy as np
import pytest

from jaxlm.config import apply_overrides, load_config
from jaxlm.data import pipeline, sources
from jaxlm.errors import JaxlmError
from jaxlm import checkpoints
from jaxlm.train.loop import train

from conftest import ROOT

pytestmark = pytest.mark.slow


def _fewshot(tiny, pretrained, train_size=4):
  c = load_config(str(ROOT / 'configs' / 'tufa_fewshot.py'))
  t = tiny(steps=1)
  c.model, c.data.image_size = t.model, t.data.image_size
  c.data.num_anchors = t.data.num_anchors
  c.eval.batch_size, c.train.batch_size = 4, 4
  c.train.steps, c.train.log_every = 1, 1
  c.data.eval.syn19.size = 4
  c.init.checkpoint = str(pretrained)
  apply_overrides(c, {'data.train_size': str(train_size)})
  return c


def test_fine_tuning_starts_from_the_pretrained_model(tmp_path, tiny):
  pre = tmp_path / 'pre'
  train(tiny(steps=2), pre, progress=False)
  c = _fewshot(tiny, pre)
  c.optim.lr = 0.0  # the one step leaves the start point as it was
  run = tmp_path / 'few'
  train(c, run, progress=False)
  _, pdata, pvars, _ = checkpoints.load_run(pre)
  cfg, data, vars_, _ = checkpoints.load_run(run)
  assert [d for d, _ in data] == ['syn19']
  for part in ('encoder', 'decoder', 'head'):
    np.testing.assert_array_equal(
        vars_['params'][part]['norm' if part != 'head' else 'fc2']['bias'],
        pvars['params'][part]['norm' if part != 'head' else 'fc2']['bias'])
  np.testing.assert_array_equal(vars_['params']['alignment']['syn19'], 0.0)
  # The new layout's mean shape comes from exactly the few training faces.
  spec = sources.dataset_specs(cfg.data.train, cfg.data.image_size)[0]
  assert len(spec.source) == 4
  np.testing.assert_allclose(
      vars_['constants']['alignment']['mean_shape'],
      pipeline.mean_shape(spec.source, 512, cfg.data.image_size), atol=1e-6)


def test_model_settings_must_match(tmp_path, tiny):
  pre = tmp_path / 'pre'
  train(tiny(steps=1), pre, progress=False)
  c = _fewshot(tiny, pre)
  c.model.decoder_layers = 3
  with pytest.raises(JaxlmError, match=r'model.decoder_layers=3 vs 2'):
    train(c, tmp_path / 'few', progress=False)
