"""DINOv2 conversion vs transformers' Dinov2Model / Dinov2WithRegistersModel.

Random weights in three key layouts (facebookresearch/dinov2 names, hub
names, transformers-5 state-dict names), converted with `jaxlm convert
dinov2`. Inputs are multiples of patch 14: 252 px (18x18 patches, the stored
37x37 position grid shrunk) and 224 px. transformers resizes DINOv2's
embedding with interpolate(size=...) (pos_resize='size') and, with
registers, antialiased (pos_resize='size_aa').
"""

import numpy as np
import pytest

torch = pytest.importorskip('torch')
transformers = pytest.importorskip('transformers')

import jax.numpy as jnp  # noqa: E402

from jaxlm import checkpoints, cli  # noqa: E402
from jaxlm.models import vit  # noqa: E402


def hf_dinov2(registers: int, depth: int = 12, seed: int = 0):
  torch.manual_seed(seed)
  kw = dict(hidden_size=384, num_hidden_layers=depth, num_attention_heads=6,
            patch_size=14, image_size=518, layerscale_value=1.0)
  if registers:
    m = transformers.Dinov2WithRegistersModel(
        transformers.Dinov2WithRegistersConfig(num_register_tokens=registers,
                                               **kw))
  else:
    m = transformers.Dinov2Model(transformers.Dinov2Config(**kw))
  m.eval()
  with torch.no_grad():
    for p in m.parameters():
      p.add_(0.02 * torch.randn_like(p))
  return m


def original_names(sd: dict) -> dict:
  """transformers 5 DINOv2 keys -> facebookresearch/dinov2 keys."""
  out = {'cls_token': sd['embeddings.cls_token'],
         'pos_embed': sd['embeddings.position_embeddings'],
         'mask_token': sd['embeddings.mask_token'][None],
         'patch_embed.proj.weight':
             sd['embeddings.patch_embeddings.projection.weight'],
         'patch_embed.proj.bias':
             sd['embeddings.patch_embeddings.projection.bias'],
         'norm.weight': sd['layernorm.weight'],
         'norm.bias': sd['layernorm.bias']}
  if 'embeddings.register_tokens' in sd:
    out['register_tokens'] = sd['embeddings.register_tokens']
  depth = 1 + max(int(k.split('.')[2]) for k in sd
                  if k.startswith('encoder.layer.'))
  for i in range(depth):
    s, d = f'encoder.layer.{i}.', f'blocks.{i}.'
    for t in ('weight', 'bias'):
      out[f'{d}attn.qkv.{t}'] = torch.cat(
          [sd[f'{s}attention.{n}_proj.{t}'] for n in 'qkv'])
      out[f'{d}attn.proj.{t}'] = sd[f'{s}attention.o_proj.{t}']
      for n in ('norm1', 'norm2', 'mlp.fc1', 'mlp.fc2'):
        out[f'{d}{n}.{t}'] = sd[f'{s}{n}.{t}']
    out[f'{d}ls1.gamma'] = sd[f'{s}layer_scale1.lambda1']
    out[f'{d}ls2.gamma'] = sd[f'{s}layer_scale2.lambda1']
  return out


def hub_names(sd: dict) -> dict:
  ren = [('attention.q_proj', 'attention.attention.query'),
         ('attention.k_proj', 'attention.attention.key'),
         ('attention.v_proj', 'attention.attention.value'),
         ('attention.o_proj', 'attention.output.dense')]
  out = {}
  for k, v in sd.items():
    for a, b in ren:
      k = k.replace(a, b)
    out[k] = v
  return out


def forward_both(m, params, variant, mode, size, dtype=jnp.float32):
  img = np.random.default_rng(size).integers(0, 256, (2, size, size, 3),
                                             dtype=np.uint8)
  x = (img / 255.0 - np.array(vit.IMAGENET_MEAN)) / np.array(vit.IMAGENET_STD)
  r = m.config.num_register_tokens if hasattr(m.config,
                                              'num_register_tokens') else 0
  with torch.no_grad():
    want = m(torch.from_numpy(x.transpose(0, 3, 1, 2)).float()
             ).last_hidden_state[:, 1 + r:].numpy()
  got, _ = vit.ViT(variant=variant, pos_resize=mode, dtype=dtype).apply(
      {'params': params}, jnp.asarray(img))
  return np.asarray(got, np.float32), want


def _convert(tmp_path, tensors, name):
  from safetensors.torch import save_file
  src = tmp_path / f'{name}.safetensors'
  save_file({k: v.contiguous() for k, v in tensors.items()}, str(src))
  dst = tmp_path / name
  assert cli.main(['convert', 'dinov2', '--src', str(src), '--dst',
                   str(dst)]) == 0
  return checkpoints.load_weights(dst)[0], checkpoints.load_meta(dst)['variant']


@pytest.mark.parametrize('layout', ['original', 'hub', 'transformers5'])
def test_dinov2_s14(tmp_path, layout):
  m = hf_dinov2(0)
  sd = m.state_dict()
  tensors = {'original': original_names, 'hub': hub_names,
             'transformers5': dict}[layout](sd)
  params, variant = _convert(tmp_path, tensors, layout)
  assert variant == 'S/14:pretrain=518:layerscale=1'
  for size in (252, 224):
    got, want = forward_both(m, params, variant, 'size', size)
    np.testing.assert_allclose(got, want, atol=1e-4)
  if layout == 'transformers5':
    got, want = forward_both(m, params, variant, 'size', 252, jnp.bfloat16)
    got, want = got.reshape(-1), want.reshape(-1)
    assert np.dot(got, want) / np.linalg.norm(got) / np.linalg.norm(
        want) >= 0.999


def test_dinov2_s14_with_registers(tmp_path):
  m = hf_dinov2(4, seed=1)
  params, variant = _convert(tmp_path, original_names(m.state_dict()), 'reg')
  assert variant == 'S/14:pretrain=518:layerscale=1:registers=4'
  for size in (252, 224):
    got, want = forward_both(m, params, variant, 'size_aa', size)
    np.testing.assert_allclose(got, want, atol=1e-4)


def test_dino_v1_command_refuses_dinov2(tmp_path, capsys):
  m = hf_dinov2(0, depth=1)
  src = tmp_path / 'v2.pth'
  torch.save(original_names(m.state_dict()), src)
  assert cli.main(['convert', 'dino', '--src', str(src), '--dst',
                   str(tmp_path / 'o')]) == 2
  assert 'convert it with `jaxlm convert dinov2`' in capsys.readouterr().err
