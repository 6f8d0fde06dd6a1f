"""ViT pieces vs PyTorch: bicubic position-embedding resize and GELU."""

import jax.numpy as jnp
import numpy as np
import pytest

from jaxlm.models import vit

torch = pytest.importorskip('torch')
F = torch.nn.functional


@pytest.mark.parametrize('n_in, n_out', [(14, 16), (14, 32), (28, 32),
                                         (14, 10)])
def test_resize_matches_torch_size_mode(n_in, n_out):
  """timm / transformers: interpolate(size=..., bicubic, align_corners=False)."""
  grid = np.random.default_rng(0).normal(size=(n_in, n_in, 8)).astype(
      np.float32)
  got = np.asarray(vit.resize_pos_embed(jnp.asarray(grid), (n_out, n_out),
                                        'size'))
  want = F.interpolate(torch.from_numpy(grid).permute(2, 0, 1)[None],
                       size=(n_out, n_out), mode='bicubic',
                       align_corners=False)[0].permute(1, 2, 0).numpy()
  np.testing.assert_allclose(got, want, atol=1e-5)


@pytest.mark.parametrize('n_in, n_out', [(14, 16), (28, 32), (14, 20)])
def test_resize_matches_dino_scale_factor_mode(n_in, n_out):
  """DINO v1: interpolate(scale_factor=(n_out + 0.1) / n_in, bicubic)."""
  grid = np.random.default_rng(1).normal(size=(n_in, n_in, 8)).astype(
      np.float32)
  got = np.asarray(vit.resize_pos_embed(jnp.asarray(grid), (n_out, n_out),
                                        'dino'))
  s = (n_out + 0.1) / n_in
  want = F.interpolate(torch.from_numpy(grid).permute(2, 0, 1)[None],
                       scale_factor=(s, s), mode='bicubic')
  assert want.shape[-1] == n_out
  np.testing.assert_allclose(got, want[0].permute(1, 2, 0).numpy(), atol=1e-5)


def test_gelu_matches_torch():
  x = np.linspace(-8, 8, 1001, dtype=np.float32)
  want = torch.nn.GELU()(torch.from_numpy(x)).numpy()
  np.testing.assert_allclose(vit.gelu(jnp.asarray(x)), want, atol=1e-6)
