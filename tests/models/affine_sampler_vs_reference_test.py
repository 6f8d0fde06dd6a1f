"""jaxlm's affine sampler vs torch.nn.functional.affine_grid + grid_sample.

Bilinear sampling of a non-square image (13 x 17) onto a non-square output
(9 x 11) through random affine maps, some reading far outside the image,
for both align_corners and both padding modes: the output and the gradients
of sum(out * w) with respect to theta and to the image must agree with
torch's autograd.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

torch = pytest.importorskip('torch')

from jaxlm.models import affine_sampler  # noqa: E402

B, C, H, W = 4, 2, 13, 17
HO, WO = 9, 11


def thetas(seed=0):
  """(B, 2, 3) float32: a rotated, scaled and sheared map; one near the
  identity; one zoomed out past the borders; one mostly outside."""
  rng = np.random.default_rng(seed)
  out = []
  for scale, shift in ((0.8, 0.3), (1.0, 0.05), (1.7, 0.4), (0.9, 1.5)):
    phi = rng.uniform(-0.6, 0.6)
    rot = np.array([[np.cos(phi), -np.sin(phi)], [np.sin(phi), np.cos(phi)]])
    a = scale * rot + 0.15 * rng.standard_normal((2, 2))
    t = shift * rng.uniform(-1, 1, 2)
    out.append(np.concatenate([a, t[:, None]], axis=1))
  return np.stack(out).astype(np.float32)


def data(seed=0):
  rng = np.random.default_rng(seed + 1)
  images = rng.uniform(-1, 1, (B, H, W, C)).astype(np.float32)
  w = rng.standard_normal((B, HO, WO, C)).astype(np.float32)
  return thetas(seed), images, w


def torch_reference(theta, images, w, padding_mode, align_corners):
  """(out NHWC, d/dtheta, d/dimages NHWC) of sum(out * w) by torch."""
  th = torch.tensor(theta, requires_grad=True)
  im = torch.tensor(images.transpose(0, 3, 1, 2).copy(), requires_grad=True)
  grid = torch.nn.functional.affine_grid(th, (B, C, HO, WO),
                                         align_corners=align_corners)
  out = torch.nn.functional.grid_sample(im, grid, mode='bilinear',
                                        padding_mode=padding_mode,
                                        align_corners=align_corners)
  out = out.permute(0, 2, 3, 1)
  (out * torch.tensor(w)).sum().backward()
  return (out.detach().numpy(), th.grad.numpy(),
          im.grad.numpy().transpose(0, 2, 3, 1))


_JITTED = {}


def ours(theta, images, w, padding_mode, align_corners):
  key = (padding_mode, align_corners)
  if key not in _JITTED:
    def loss(theta, images, w):
      out = affine_sampler.resample(images, theta, (HO, WO), padding_mode,
                                    align_corners)
      return (out * w).sum(), out
    _JITTED[key] = jax.jit(jax.grad(loss, argnums=(0, 1), has_aux=True))
  (g_theta, g_images), out = _JITTED[key](theta, images, w)
  return np.asarray(out), np.asarray(g_theta), np.asarray(g_images)


def assert_close_relative(actual, desired, rtol):
  """|actual - desired| <= rtol * max(|desired|), elementwise."""
  scale = np.abs(desired).max()
  np.testing.assert_allclose(actual, desired, rtol=rtol, atol=rtol * scale)


@pytest.mark.parametrize('padding_mode', ['zeros', 'border'])
@pytest.mark.parametrize('align_corners', [False, True])
def test_resample_and_gradients_match_torch(padding_mode, align_corners):
  theta, images, w = data()
  ref = torch_reference(theta, images, w, padding_mode, align_corners)
  out, g_theta, g_images = ours(theta, images, w, padding_mode, align_corners)
  assert out.shape == (B, HO, WO, C)
  np.testing.assert_allclose(out, ref[0], rtol=0, atol=1e-5)
  # the maps do read outside the image: zeros and border differ there
  if padding_mode == 'zeros':
    assert (np.abs(out) < 1e-12).any()
  assert_close_relative(g_theta, ref[1], 1e-4)
  assert_close_relative(g_images, ref[2], 1e-4)
  assert np.abs(g_theta).min() > 0


@pytest.mark.parametrize('align_corners', [False, True])
def test_affine_grid_matches_torch(align_corners):
  theta = thetas(1)
  ref = torch.nn.functional.affine_grid(
      torch.tensor(theta), (B, C, HO, WO), align_corners=align_corners)
  grid = affine_sampler.affine_grid(jnp.asarray(theta), (HO, WO),
                                    align_corners)
  assert grid.shape == (B, HO, WO, 2)
  np.testing.assert_allclose(grid, ref.numpy(), rtol=0, atol=1e-6)


@pytest.mark.parametrize('align_corners', [False, True])
def test_identity_reads_the_image_back(align_corners):
  _, images, _ = data()
  eye = jnp.broadcast_to(jnp.eye(2, 3), (B, 2, 3))
  resample = jax.jit(affine_sampler.resample, static_argnums=(2, 3, 4))
  out = resample(jnp.asarray(images), eye, (H, W), 'zeros', align_corners)
  np.testing.assert_allclose(out, images, rtol=0, atol=1e-5)


def test_unknown_padding_mode_is_named():
  with pytest.raises(ValueError, match='reflection'):
    affine_sampler.grid_sample(jnp.zeros((1, 4, 4, 1)),
                               jnp.zeros((1, 2, 2, 2)), 'reflection')
