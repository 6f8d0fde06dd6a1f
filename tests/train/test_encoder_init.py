"""config.init.encoder: a converted DINO checkpoint initialises training."""

import ml_collections
import numpy as np
import pytest

from jaxlm import checkpoints, cli
from jaxlm.errors import JaxlmError
from jaxlm.train.loop import train

torch = pytest.importorskip('torch')
transformers = pytest.importorskip('transformers')


@pytest.fixture(scope='module')
def converted(tmp_path_factory):
  """A Ti/16 with one block (the tiny test model's encoder) from transformers."""
  tmp = tmp_path_factory.mktemp('enc')
  torch.manual_seed(0)
  m = transformers.ViTModel(transformers.ViTConfig(
      hidden_size=192, num_hidden_layers=1, num_attention_heads=3,
      intermediate_size=768, patch_size=16, image_size=224, qkv_bias=True,
      layer_norm_eps=1e-6), add_pooling_layer=False)
  from safetensors.torch import save_file
  save_file(m.state_dict(), str(tmp / 'ti.safetensors'))
  assert cli.main(['convert', 'dino', '--src', str(tmp / 'ti.safetensors'),
                   '--dst', str(tmp / 'ti')]) == 0
  return tmp / 'ti'


@pytest.mark.slow
def test_training_starts_from_the_converted_encoder(tmp_path, tiny, converted):
  c = tiny(steps=1)
  c.init = ml_collections.ConfigDict(dict(encoder=str(converted)))
  c.optim.lr = 0.0  # the one step leaves the weights where they started
  train(c, tmp_path / 'run', progress=False)
  _, _, variables, _ = checkpoints.load_run(tmp_path / 'run')
  want = checkpoints.flatten(checkpoints.load_weights(converted)[0])
  got = checkpoints.flatten(variables['params']['encoder'])
  assert set(want) == set(got)
  for k in want:
    np.testing.assert_array_equal(got[k], want[k], err_msg=k)


def test_variant_mismatch_is_an_error(tmp_path, tiny, converted):
  c = tiny(steps=1)
  c.model.variant = 'Ti/16:depth=2'
  c.init = ml_collections.ConfigDict(dict(encoder=str(converted)))
  with pytest.raises(JaxlmError, match=r'encoder Ti/16:depth=1 but the '
                     r'config has model.variant=Ti/16:depth=2'):
    train(c, tmp_path / 'run', progress=False)


def test_not_a_converted_folder(tmp_path, tiny):
  c = tiny(steps=1)
  c.init = ml_collections.ConfigDict(dict(encoder=str(tmp_path)))
  with pytest.raises(JaxlmError, match='not a converted checkpoint'):
    train(c, tmp_path / 'run', progress=False)
