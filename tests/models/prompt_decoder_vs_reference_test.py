"""Prompt decoder vs a PyTorch decoder built on torch.nn.MultiheadAttention.

The reference drives nn.MultiheadAttention (packed in_proj_weight) the way
the official TUFA decoder does: pre-norm; self-attention q = k = LN(t) + E,
v = LN(t); cross-attention q = LN(t) + E, k = F + P, v = F; ReLU FFN; one
shared final LayerNorm on every layer's output.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlm.models.prompt_decoder import PromptDecoder

torch = pytest.importorskip('torch')
nn = torch.nn

D, H, FF, L = 48, 6, 96, 3


class RefLayer(nn.Module):

  def __init__(self):
    super().__init__()
    self.self_attn = nn.MultiheadAttention(D, H, batch_first=True)
    self.cross_attn = nn.MultiheadAttention(D, H, batch_first=True)
    self.linear1, self.linear2 = nn.Linear(D, FF), nn.Linear(FF, D)
    self.norm1, self.norm2, self.norm3 = (nn.LayerNorm(D), nn.LayerNorm(D),
                                          nn.LayerNorm(D))

  def forward(self, t, prompt, memory, pos):
    y = self.norm1(t)
    t = t + self.self_attn(y + prompt, y + prompt, y)[0]
    y = self.norm2(t)
    t = t + self.cross_attn(y + prompt, memory + pos, memory)[0]
    y = self.norm3(t)
    return t + self.linear2(torch.relu(self.linear1(y)))


class RefDecoder(nn.Module):

  def __init__(self):
    super().__init__()
    self.layers = nn.ModuleList([RefLayer() for _ in range(L)])
    self.norm = nn.LayerNorm(D)

  def forward(self, memory, pos, prompt):
    t = torch.zeros_like(prompt)
    outs = []
    for layer in self.layers:
      t = layer(t, prompt, memory, pos)
      outs.append(self.norm(t))
    return torch.stack(outs)


def _t(x):
  return torch.from_numpy(np.array(x, np.float32))


def _load_attention(mha, p):
  w = [np.asarray(p[n]['kernel']).T for n in ('query', 'key', 'value')]
  b = [np.asarray(p[n]['bias']) for n in ('query', 'key', 'value')]
  mha.in_proj_weight.data = _t(np.concatenate(w))
  mha.in_proj_bias.data = _t(np.concatenate(b))
  mha.out_proj.weight.data = _t(np.asarray(p['out']['kernel']).T)
  mha.out_proj.bias.data = _t(p['out']['bias'])


def _load_norm(norm, p):
  norm.weight.data, norm.bias.data = _t(p['scale']), _t(p['bias'])


def _load(ref, params):
  for i, layer in enumerate(ref.layers):
    p = params[f'layers_{i}']
    _load_attention(layer.self_attn, p['self_attn'])
    _load_attention(layer.cross_attn, p['cross_attn'])
    for n in ('linear1', 'linear2'):
      getattr(layer, n).weight.data = _t(np.asarray(p[n]['kernel']).T)
      getattr(layer, n).bias.data = _t(p[n]['bias'])
    for n in ('norm1', 'norm2', 'norm3'):
      _load_norm(getattr(layer, n), p[n])
  _load_norm(ref.norm, params['norm'])


@pytest.fixture(scope='module')
def pair():
  model = PromptDecoder(L, H, FF)
  k = jax.random.split(jax.random.key(0), 4)
  memory = jax.random.normal(k[0], (2, 30, D))
  pos = jax.random.normal(k[1], (1, 30, D))
  prompts = jax.random.normal(k[2], (2, 7, D))
  params = model.init(k[3], memory, pos, prompts)['params']
  # Non-trivial norms and biases, so that every parameter is exercised.
  params = jax.tree_util.tree_map(
      lambda x: x + 0.1 * jax.random.normal(jax.random.key(x.size), x.shape),
      params)
  ref = RefDecoder().eval()
  _load(ref, params)
  return model, params, ref, (memory, pos, prompts)


def test_decoder_matches_torch_multihead_attention(pair):
  model, params, ref, (memory, pos, prompts) = pair
  got = np.asarray(model.apply({'params': params}, memory, pos, prompts))
  with torch.no_grad():
    want = ref(_t(memory), _t(pos), _t(prompts)).numpy()
  assert got.shape == (L, 2, 7, D)
  np.testing.assert_allclose(got, want, atol=1e-5, rtol=1e-5)


def test_one_layer_matches(pair):
  model, params, ref, (memory, pos, prompts) = pair
  from jaxlm.models.prompt_decoder import PromptDecoderLayer
  t = jax.random.normal(jax.random.key(9), prompts.shape)
  got = PromptDecoderLayer(H, FF).apply({'params': params['layers_0']}, t,
                                        prompts, memory, pos)
  with torch.no_grad():
    want = ref.layers[0](_t(t), _t(prompts), _t(memory), _t(pos)).numpy()
  np.testing.assert_allclose(got, want, atol=1e-5, rtol=1e-5)


def test_bfloat16_cosine(pair):
  model, params, ref, (memory, pos, prompts) = pair
  got = np.asarray(PromptDecoder(L, H, FF, dtype=jnp.bfloat16).apply(
      {'params': params}, memory, pos, prompts), np.float32)
  with torch.no_grad():
    want = ref(_t(memory), _t(pos), _t(prompts)).numpy()
  cos = (got * want).sum() / np.linalg.norm(got) / np.linalg.norm(want)
  assert cos >= 0.999
