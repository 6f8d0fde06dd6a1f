"""DINOv3 conversion vs transformers' DINOv3ViTModel (random weights).

2D RoPE on q/k of the patch tokens (not CLS/storage tokens), LayerScale,
4 storage tokens, LayerNorm eps 1e-5, no bias on k. Weights in the
transformers names and in facebookresearch/dinov3 names (fused qkv with a
bias_mask, `storage_tokens`, `rope_embed.periods`), converted with `jaxlm
convert dinov3`, compared at 256 px and 224 px (RoPE needs no resizing).
"""

import numpy as np
import pytest

torch = pytest.importorskip('torch')
transformers = pytest.importorskip('transformers')

import jax.numpy as jnp  # noqa: E402

from jaxlm import checkpoints, cli  # noqa: E402
from jaxlm.models import vit  # noqa: E402


def hf_dinov3(depth=12, seed=0):
  torch.manual_seed(seed)
  m = transformers.DINOv3ViTModel(transformers.DINOv3ViTConfig(
      hidden_size=384, num_hidden_layers=depth, num_attention_heads=6,
      intermediate_size=1536, patch_size=16, num_register_tokens=4,
      layerscale_value=1.0)).eval()
  with torch.no_grad():
    for p in m.parameters():
      p.add_(0.02 * torch.randn_like(p))
  return m


def original_names(m) -> dict:
  sd = m.state_dict()
  out = {'cls_token': sd['embeddings.cls_token'],
         'storage_tokens': sd['embeddings.register_tokens'],
         'mask_token': sd['embeddings.mask_token'],
         'patch_embed.proj.weight': sd['embeddings.patch_embeddings.weight'],
         'patch_embed.proj.bias': sd['embeddings.patch_embeddings.bias'],
         'norm.weight': sd['norm.weight'], 'norm.bias': sd['norm.bias']}
  head_dim = 384 // 6
  base = m.config.rope_theta
  out['rope_embed.periods'] = base ** (
      4 * torch.arange(head_dim // 4, dtype=torch.float32) / head_dim)
  depth = m.config.num_hidden_layers
  for i in range(depth):
    s, d = f'model.layer.{i}.', f'blocks.{i}.'
    a = f'{s}attention.'
    out[f'{d}attn.qkv.weight'] = torch.cat(
        [sd[f'{a}{n}_proj.weight'] for n in 'qkv'])
    # The original stores a k bias too and masks it out.
    junk = torch.randn(384)
    out[f'{d}attn.qkv.bias'] = torch.cat(
        [sd[f'{a}q_proj.bias'], junk, sd[f'{a}v_proj.bias']])
    out[f'{d}attn.qkv.bias_mask'] = torch.cat(
        [torch.ones(384), torch.zeros(384), torch.ones(384)])
    for t in ('weight', 'bias'):
      out[f'{d}attn.proj.{t}'] = sd[f'{a}o_proj.{t}']
      out[f'{d}norm1.{t}'] = sd[f'{s}norm1.{t}']
      out[f'{d}norm2.{t}'] = sd[f'{s}norm2.{t}']
      out[f'{d}mlp.fc1.{t}'] = sd[f'{s}mlp.up_proj.{t}']
      out[f'{d}mlp.fc2.{t}'] = sd[f'{s}mlp.down_proj.{t}']
    out[f'{d}ls1.gamma'] = sd[f'{s}layer_scale1.lambda1']
    out[f'{d}ls2.gamma'] = sd[f'{s}layer_scale2.lambda1']
  return out


@pytest.fixture(scope='module')
def model():
  return hf_dinov3()


@pytest.mark.parametrize('layout', ['original', 'transformers'])
def test_dinov3_s16(model, tmp_path, layout):
  from safetensors.torch import save_file
  tensors = original_names(model) if layout == 'original' else dict(
      model.state_dict())
  src = tmp_path / 'v3.safetensors'
  save_file({k: v.contiguous() for k, v in tensors.items()}, str(src))
  dst = tmp_path / 'v3'
  assert cli.main(['convert', 'dinov3', '--src', str(src), '--dst',
                   str(dst)]) == 0
  params = checkpoints.load_weights(dst)[0]
  variant = checkpoints.load_meta(dst)['variant']
  assert variant == 'S/16:layerscale=1:registers=4:rope=100:eps=5'
  for size in (256, 224):
    img = np.random.default_rng(size).integers(0, 256, (2, size, size, 3),
                                               dtype=np.uint8)
    x = (img / 255.0 - np.array(vit.IMAGENET_MEAN)) / np.array(
        vit.IMAGENET_STD)
    with torch.no_grad():
      want = model(torch.from_numpy(x.transpose(0, 3, 1, 2)).float()
                   ).last_hidden_state[:, 5:].numpy()
    got, pos = vit.ViT(variant=variant).apply({'params': params},
                                              jnp.asarray(img))
    np.testing.assert_allclose(np.asarray(got), want, atol=1e-4)
    # Cross-attention keys get the prompts' encoding of each patch centre.
    assert pos.shape == (1, (size // 16) ** 2, 384)
  got16, _ = vit.ViT(variant=variant, dtype=jnp.bfloat16).apply(
      {'params': params}, jnp.asarray(img))
  a, b = np.asarray(got16, np.float32).ravel(), want.ravel()
  assert np.dot(a, b) / np.linalg.norm(a) / np.linalg.norm(b) >= 0.999


def test_dinov3_refuses_a_dinov2_file(tmp_path, capsys):
  src = tmp_path / 'x.pth'
  torch.save({'patch_embed.proj.weight': torch.zeros(384, 3, 14, 14),
              'pos_embed': torch.zeros(1, 1370, 384)}, src)
  assert cli.main(['convert', 'dinov3', '--src', str(src), '--dst',
                   str(tmp_path / 'o')]) == 2
  assert 'not DINOv3' in capsys.readouterr().err
