import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlm.models import vit


def test_variants():
  assert vit.decode_variant('S/16') == dict(width=384, depth=12, num_heads=6,
                                            mlp_dim=1536, patch=16,
                                            registers=0, layerscale=0,
                                            pretrain=224, rope=0, eps=6)
  v2 = vit.decode_variant('S/14:pretrain=518:layerscale=1:registers=4')
  assert (v2['patch'], v2['pretrain'], v2['layerscale'], v2['registers']) == (
      14, 518, 1, 4)
  assert vit.decode_variant('S/8')['patch'] == 8
  assert vit.decode_variant('B/16')['width'] == 768
  assert vit.decode_variant('Ti/16:depth=4')['depth'] == 4
  with pytest.raises(ValueError, match='unknown ViT variant'):
    vit.decode_variant('L/16')


def test_tokens_and_resized_position_embedding():
  m = vit.ViT('Ti/16:depth=1')
  img = jnp.zeros((2, 256, 256, 3), jnp.uint8)
  v = m.init(jax.random.key(0), img)
  assert v['params']['pos_embed'].shape == (1, 1 + 14 * 14, 192)
  tokens, pos = m.apply(v, img)
  assert tokens.shape == (2, 256, 192)  # 16x16 patches, CLS dropped
  assert pos.shape == (1, 256, 192)
  # At the pretraining size the embedding is used as stored.
  t224, p224 = m.apply(v, jnp.zeros((1, 224, 224, 3)))
  np.testing.assert_array_equal(p224[0], v['params']['pos_embed'][0, 1:])
  assert t224.shape == (1, 196, 192)


def test_bicubic_matrix_properties():
  """Keys' cubic (A = -0.75): identity at equal size, weights sum to one,
  and left-right symmetry (the exact values are checked against torch in
  vit_vs_reference_test.py)."""
  np.testing.assert_allclose(vit.bicubic_matrix(14, 14), np.eye(14),
                             atol=1e-7)
  for n_in, n_out in ((14, 16), (14, 20), (28, 32), (14, 9)):
    m = vit.bicubic_matrix(n_in, n_out)
    np.testing.assert_allclose(m.sum(1), 1.0, atol=1e-6)
    np.testing.assert_allclose(m[::-1, ::-1], m, atol=1e-6)
  # Interior taps of an upsampling row: weights of the four neighbours.
  t = 0.25
  row = vit._cubic(np.array([t + 1, t, 1 - t, 2 - t]))
  np.testing.assert_allclose(
      row, [-0.10546875, 0.87890625, 0.26171875, -0.03515625], atol=1e-9)


def test_gelu_is_exact():
  x = jnp.linspace(-6, 6, 101)
  np.testing.assert_allclose(vit.gelu(x), jax.nn.gelu(x, approximate=False),
                             atol=1e-6)


def test_input_must_be_multiple_of_patch():
  m = vit.ViT('Ti/16:depth=1')
  with pytest.raises(ValueError, match='multiple of patch'):
    m.init(jax.random.key(0), jnp.zeros((1, 100, 100, 3)))


def test_sincos_pos_init_encodes_patch_centres():
  from jaxlm.models.structure_prompt import encode_prompts
  m = vit.ViT('Ti/16:depth=1', pos_init='sincos', pos_init_scale=2.0)
  v = m.init(jax.random.key(0), jnp.zeros((1, 224, 224, 3)))
  pe = np.asarray(v['params']['pos_embed'][0])
  # Patch (row 3, col 5) of the 14x14 grid has its centre at (5.5, 3.5) / 14.
  want = 2.0 * encode_prompts(jnp.array([5.5 / 14, 3.5 / 14]), 192)
  np.testing.assert_allclose(pe[1 + 3 * 14 + 5], want, atol=1e-6)
  np.testing.assert_array_equal(pe[0], 0)  # CLS position
  with pytest.raises(ValueError, match='pos_init'):
    vit.ViT('Ti/16:depth=1', pos_init='learned').init(
        jax.random.key(0), jnp.zeros((1, 32, 32, 3)))
