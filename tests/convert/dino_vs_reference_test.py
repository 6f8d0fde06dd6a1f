"""DINO v1 conversion: jaxlm's ViT vs transformers' ViTModel (random weights).

transformers' `ViTModel` is the architecture of the Hugging Face DINO v1
checkpoints (facebook/dino-vits16, -vits8): an independent implementation.
Its weights are written in the three key layouts jaxlm reads (the original
DINO/timm names, the hub's ViTModel names, transformers 5 state-dict names),
converted with `jaxlm convert dino`, and the outputs compared: patch
embedding <= 1e-5, first block <= 1e-4, full model <= 1e-4 at 256x256 (the
position embedding is resized from 14x14) and at a second resolution, cosine
>= 0.999 in bf16. transformers resizes position embeddings with
interpolate(size=...), which is jaxlm's pos_resize='size'.
"""

import numpy as np
import pytest

torch = pytest.importorskip('torch')
transformers = pytest.importorskip('transformers')

import jax.numpy as jnp  # noqa: E402

from jaxlm import checkpoints, cli  # noqa: E402
from jaxlm.models import vit  # noqa: E402


def hf_vit(patch: int, depth: int = 12, seed: int = 0):
  torch.manual_seed(seed)
  cfg = transformers.ViTConfig(
      hidden_size=384, num_hidden_layers=depth, num_attention_heads=6,
      intermediate_size=1536, patch_size=patch, image_size=224,
      qkv_bias=True, layer_norm_eps=1e-6, hidden_act='gelu')
  m = transformers.ViTModel(cfg, add_pooling_layer=False).eval()
  with torch.no_grad():  # every parameter away from its init value
    for p in m.parameters():
      p.add_(0.02 * torch.randn_like(p))
  return m


def original_names(sd: dict) -> dict:
  """transformers 5 ViT keys -> facebookresearch/dino keys (q, k, v fused)."""
  out = {'cls_token': sd['embeddings.cls_token'],
         'pos_embed': sd['embeddings.position_embeddings'],
         'patch_embed.proj.weight':
             sd['embeddings.patch_embeddings.projection.weight'],
         'patch_embed.proj.bias':
             sd['embeddings.patch_embeddings.projection.bias'],
         'norm.weight': sd['layernorm.weight'],
         'norm.bias': sd['layernorm.bias']}
  depth = 1 + max(int(k.split('.')[1]) for k in sd if k.startswith('layers.'))
  for i in range(depth):
    s, d = f'layers.{i}.', f'blocks.{i}.'
    for t in ('weight', 'bias'):
      out[f'{d}attn.qkv.{t}'] = torch.cat(
          [sd[f'{s}attention.{n}_proj.{t}'] for n in 'qkv'])
      out[f'{d}attn.proj.{t}'] = sd[f'{s}attention.o_proj.{t}']
      out[f'{d}norm1.{t}'] = sd[f'{s}layernorm_before.{t}']
      out[f'{d}norm2.{t}'] = sd[f'{s}layernorm_after.{t}']
      out[f'{d}mlp.fc1.{t}'] = sd[f'{s}mlp.fc1.{t}']
      out[f'{d}mlp.fc2.{t}'] = sd[f'{s}mlp.fc2.{t}']
  return out


def hub_names(sd: dict) -> dict:
  """transformers 5 keys -> the older hub layout (encoder.layer.*)."""
  ren = [('layers.', 'encoder.layer.'),
         ('attention.q_proj', 'attention.attention.query'),
         ('attention.k_proj', 'attention.attention.key'),
         ('attention.v_proj', 'attention.attention.value'),
         ('attention.o_proj', 'attention.output.dense'),
         ('mlp.fc1', 'intermediate.dense'), ('mlp.fc2', 'output.dense')]
  out = {}
  for k, v in sd.items():
    for a, b in ren:
      k = k.replace(a, b) if k.startswith(('layers.', 'encoder.')) else k
    out['vit.' + k] = v  # hub files of ViTFor* models carry a prefix
  return out


def images(size, n=2, seed=0):
  return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3),
                                              dtype=np.uint8)


def hf_forward(m, img):
  x = (img / 255.0 - np.array(vit.IMAGENET_MEAN)) / np.array(vit.IMAGENET_STD)
  with torch.no_grad():
    out = m(torch.from_numpy(x.transpose(0, 3, 1, 2)).float(),
            interpolate_pos_encoding=True, output_hidden_states=True)
    patches = m.embeddings.patch_embeddings.projection(
        torch.from_numpy(x.transpose(0, 3, 1, 2)).float())
  return dict(patch=patches.permute(0, 2, 3, 1).numpy(),
              block0=out.hidden_states[1].numpy(),
              out=out.last_hidden_state[:, 1:].numpy())


def jax_forward(params, variant, img, dtype=jnp.float32):
  model = vit.ViT(variant=variant, pos_resize='size', dtype=dtype)
  (tokens, _), inter = model.apply({'params': params}, jnp.asarray(img),
                                   capture_intermediates=True)
  inter = inter['intermediates']
  return dict(patch=np.asarray(inter['patch_embed']['__call__'][0],
                               np.float32),
              block0=np.asarray(inter['blocks_0']['__call__'][0], np.float32),
              out=np.asarray(tokens, np.float32))


def _convert(tmp_path, tensors, name, suffix):
  src = tmp_path / f'{name}{suffix}'
  if suffix == '.safetensors':
    from safetensors.torch import save_file
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(src))
  else:
    torch.save(tensors, src)
  dst = tmp_path / f'{name}_jax'
  assert cli.main(['convert', 'dino', '--src', str(src), '--dst', str(dst),
                   '--no-progress']) == 0
  return checkpoints.load_weights(dst)[0], checkpoints.load_meta(dst)


@pytest.fixture(scope='module')
def s16():
  return hf_vit(16)


@pytest.mark.parametrize('layout', ['original', 'hub', 'transformers5'])
def test_s16_parity_in_every_key_layout(s16, tmp_path, layout):
  sd = s16.state_dict()
  tensors = {'original': original_names, 'hub': hub_names,
             'transformers5': dict}[layout](sd)
  suffix = '.pth' if layout == 'original' else '.safetensors'
  params, meta = _convert(tmp_path, tensors, layout, suffix)
  assert meta['variant'] == 'S/16'
  assert meta['num_params'] == sum(p.numel() for p in s16.parameters())
  for size in (256, 320):
    img = images(size)
    want, got = hf_forward(s16, img), jax_forward(params, 'S/16', img)
    np.testing.assert_allclose(got['patch'], want['patch'], atol=1e-5)
    np.testing.assert_allclose(got['block0'], want['block0'], atol=1e-4)
    np.testing.assert_allclose(got['out'], want['out'], atol=1e-4)


def test_s16_bf16_cosine(s16, tmp_path):
  params, _ = _convert(tmp_path, original_names(s16.state_dict()), 'o',
                       '.pth')
  img = images(256)
  want = hf_forward(s16, img)['out'].reshape(-1)
  got = jax_forward(params, 'S/16', img, jnp.bfloat16)['out'].reshape(-1)
  cos = np.dot(want, got) / np.linalg.norm(want) / np.linalg.norm(got)
  assert cos >= 0.999, cos


@pytest.mark.slow
def test_s8_parity(tmp_path):
  m = hf_vit(8, seed=1)
  params, meta = _convert(tmp_path, original_names(m.state_dict()), 's8',
                          '.pth')
  assert meta['variant'] == 'S/8'
  for size in (256, 224):
    img = images(size, n=1)
    want, got = hf_forward(m, img), jax_forward(params, 'S/8', img)
    np.testing.assert_allclose(got['patch'], want['patch'], atol=1e-5)
    np.testing.assert_allclose(got['out'], want['out'], atol=1e-4)


# --- bad input: clear errors, nothing written ------------------------------


def _expect_error(tmp_path, src, capsys, *match, kind='dino'):
  dst = tmp_path / 'out'
  assert cli.main(['convert', kind, '--src', str(src), '--dst', str(dst),
                   '--no-progress']) == 2
  err = capsys.readouterr().err
  for m in match:
    assert m in err, err
  assert not dst.exists()
  assert not [p for p in tmp_path.iterdir() if p.name.startswith('.out')]


def test_truncated_file(s16, tmp_path, capsys):
  src = tmp_path / 'w.pth'
  torch.save(original_names(s16.state_dict()), src)
  src.write_bytes(src.read_bytes()[:100000])
  _expect_error(tmp_path, src, capsys, 'w.pth', 'truncated or corrupt')


class Payload:
  def __reduce__(self):
    return (print, ('this must never run',))


def test_file_that_would_unpickle_code(tmp_path, capsys):
  src = tmp_path / 'evil.pth'
  torch.save({'cls_token': torch.zeros(1, 1, 384), 'x': Payload()}, src)
  _expect_error(tmp_path, src, capsys, 'refused to unpickle')
  assert 'this must never run' not in capsys.readouterr().out


def test_safetensors_with_a_missing_tensor(s16, tmp_path, capsys):
  from safetensors.torch import save_file
  sd = dict(s16.state_dict())
  del sd['layers.3.attention.k_proj.weight']
  src = tmp_path / 'm.safetensors'
  save_file({k: v.contiguous() for k, v in sd.items()}, str(src))
  _expect_error(tmp_path, src, capsys, 'missing 1 key(s)',
                'layers.3.attention.k_proj.weight')


def test_checkpoint_of_another_architecture(tmp_path, capsys):
  src = tmp_path / 'resnet.pth'
  torch.save({'conv1.weight': torch.zeros(64, 3, 7, 7),
              'fc.weight': torch.zeros(10, 512)}, src)
  _expect_error(tmp_path, src, capsys, 'not a DINO ViT checkpoint',
                'conv1.weight')


def test_extra_keys_are_named(s16, tmp_path, capsys):
  sd = original_names(s16.state_dict())
  sd['blocks.0.attn.rel_pos'] = torch.zeros(3)
  src = tmp_path / 'x.pth'
  torch.save(sd, src)
  _expect_error(tmp_path, src, capsys, 'not used by any parameter',
                'blocks.0.attn.rel_pos')


def test_variant_mismatch_is_named(s16, tmp_path, capsys):
  src = tmp_path / 'v.pth'
  torch.save(original_names(s16.state_dict()), src)
  dst = tmp_path / 'out'
  assert cli.main(['convert', 'dino', '--src', str(src), '--dst', str(dst),
                   '--variant', 'S/8']) == 2
  assert '--variant S/8 but the checkpoint is a S/16' in capsys.readouterr().err


def test_summary_lists_every_parameter_and_its_source(s16, tmp_path, capsys):
  params, _ = _convert(tmp_path, original_names(s16.state_dict()), 'o',
                       '.pth')
  out = capsys.readouterr().out.splitlines()
  assert len(out) == len(checkpoints.flatten(params))
  assert 'blocks_0/qkv/kernel (384, 1152) <- blocks.0.attn.qkv.weight' in out
  hub = hub_names(s16.state_dict())
  _convert(tmp_path, hub, 'h', '.safetensors')
  out = capsys.readouterr().out.splitlines()
  assert any(l.startswith('blocks_0/qkv/kernel (384, 1152) <- encoder.layer.0'
                          '.attention.attention.query.weight, ') for l in out)
