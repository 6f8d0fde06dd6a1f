r"""LensMaster (paper 000) on WFLW: frozen DINOv3 ViT-S/16 + the Cascaded Dual
Vision Transformer's 8-stage heatmap cascade.

  jaxlm build wflw --manual_dir ~/downloads/wflw --data_dir ~/tfds
  jaxlm convert dinov3 --src dinov3_vits16_pretrain_lvd1689m.pth \
      --dst ~/weights/dinov3_s16
  jaxlm train --config configs/lensmaster_dinov3_wflw.py --workdir RUN \
      --config.data.data_dir=~/tfds --config.init.encoder=~/weights/dinov3_s16

`configs/lensmaster_dinov3_wflw.py:finetune=3` fine-tunes the encoder's
last 3 blocks and final norm (the paper's ablation, 3.87% NME);
`:heading_net` trains CD-ViT's own IR-SE backbone instead (the paper's
baseline; no encoder to convert).

The recipe (paper 000 and the public CD-ViT code): 256 px crops resized to
512 px for the ViT (32 x 32 tokens, CLS and registers dropped) -> Conv1x1
(384 -> 256) + BN + ReLU -> 8 stages of 2 (CoordConv + dual block), 32 x 32
heatmaps, soft-argmax; 10 x AWing + SmoothL1 (beta 1.0, what the code
trains with: see `models/lensmaster.py`), stage weights 1.2^-(7-i); Adam
1e-4, halved every 200 of 500 epochs, batch 32 (the code's 16 per GPU on 2
GPUs: `--config.train.batch_size` = 16 x your devices for its per-device
batch); EMA 0.999 per step (the document's 0.99 every 10 iterations; the
public code's EMA never averages: it copies the weights); bf16 compute with
float32 parameters (the code uses fp16 autocast).

Augmentation, mapped onto jaxlm's affine augment (`data/augment.py`),
which draws rotation, scale and shift for every face as clipped normals
(the code: one Albumentations Affine with p 0.4 and uniform ranges, so 60%
of its faces are not moved; jaxlm moves every face, about a third of them
to the full +-20 deg): rotation N(0, 20) clipped to +-20 deg, crop side
N(1.25, 0.15) x the box clipped to 1.0-1.5 (the code's zoom 0.8-1.2), shift
N(0, 0.1) x the box clipped to +-0.19 (about +-40 px of 256), shear p 0.4
up to +-5 deg, greyscale p 0.3, brightness /
contrast p 0.3, gamma 0.8-1.2 p 0.2, Gaussian blur (kernel 5-19) p 0.1,
Gaussian noise p 0.3 (std 10-14 grey levels: see `data/augment.py` for the
code's version-dependent reading), flip with the layout's pairs. Not mapped
(jaxlm's augment module has no such transform yet): gravel, shadow, rain and
perspective (a perspective warp would break augment's one-affine design).

Published (paper 000, WFLW test, inter-ocular): NME 3.92%, FR@10% 2.0%,
AUC@10% 0.626 (fine-tuning the last 3 blocks: 3.87%). Not run here: WFLW
and the DINOv3 weights cannot be downloaded on this machine.
"""

import ml_collections

from jaxlm import models
from jaxlm.configs.common import base_config, tfds

WFLW_TRAIN_FACES = 7500
DINOV3_DEPTH = 12
ARGS = (*(f'finetune={k}' for k in range(1, DINOV3_DEPTH + 1)), 'heading_net')


def frozen_encoder(finetune_last: int = 0, depth: int = DINOV3_DEPTH):
  """`train.frozen` patterns: the encoder, except its last `finetune_last`
  blocks and (then) its final norm."""
  if not finetune_last:
    return ('encoder',)
  return ('encoder', *(f'!encoder/blocks_{i}' for i in
                       range(depth - finetune_last, depth)), '!encoder/norm')


def get_config(arg=None):
  """arg: '' | 'finetune=K' | 'heading_net'."""
  c = base_config()
  c.model = models.get('lensmaster').default_config()
  c.model.dtype = 'bfloat16'
  c.data.image_size = 256
  c.data.num_anchors = 0  # every landmark, in layout order
  c.data.train.wflw = tfds('wflw', 'wflw98', 'train')
  c.data.eval.wflw = tfds('wflw', 'wflw98', 'test', prompts='wflw')
  c.data.mean_shape_samples = WFLW_TRAIN_FACES
  c.data.augment.update(dict(
      rotation_std=20.0, rotation_max=20.0,
      scale_mean=1.25, scale_std=0.15, scale_min=1.0, scale_max=1.5,
      shift_std=0.1, shift_max=0.19, shear_prob=0.4, shear_std=0.087,
      shear_max=0.087, grey_prob=0.3, colour_prob=0.3, occlusion_prob=0.0,
      gamma_prob=0.2, blur_prob=0.1, noise_prob=0.3))
  c.init = ml_collections.ConfigDict(dict(encoder=''))
  c.train.frozen = frozen_encoder()
  if arg and arg.startswith('finetune='):
    c.train.frozen = frozen_encoder(int(arg.split('=')[1]))
  elif arg == 'heading_net':
    c.model.backbone = 'heading_net'
    c.train.frozen = ()
    del c.init
  epochs = 500
  c.train.batch_size = 32
  c.train.steps = epochs * WFLW_TRAIN_FACES // c.train.batch_size
  c.train.checkpoint_every = 5000
  c.train.ema_decay = 0.999
  c.optim = ml_collections.ConfigDict(dict(
      name='adam', lr=1e-4, b1=0.9, b2=0.999, weight_decay=0.0,
      warmup_steps=0, decay_at=(0.4, 0.8), decay_factor=0.5, grad_clip=0.0))
  return c
