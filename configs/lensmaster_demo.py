r"""LensMaster's heatmap cascade (paper 000), tiny, on synthetic syn98 faces.

  jaxlm train --config configs/lensmaster_demo.py \
      --workdir workdirs/lensmaster_demo --eval

A DINOv3-shaped ViT (Ti/16 with 4 blocks, LayerScale, 4 registers, 2D
RoPE; random weights: no pretrained DINOv3 is reachable here), **frozen**
as LensMaster freezes its backbone (`train.frozen = ('encoder',)`), sees the
128 px crop resized to 256 px (a 16 x 16 token map) -> Conv1x1 + BN + ReLU
to width 64 -> 2 cascade stages of 2 (CoordConv + dual block) -> 16 x 16
heatmaps of the 98 points -> soft-argmax. Loss: the public code's 10 x
AWing + SmoothL1 (beta 1), stage weights 1.2^-(T-1-i). Adam 1e-3 (x0.5 at
half-way, as the recipe's halving), batch 16, EMA off; evaluated on 256
held-out syn98 faces against the mean shape.

`'--config.train.frozen=()'` trains the encoder too.

Measured on a 2-core CPU (2026-12-01; `benchmarks/results/lensmaster_cpu.md`,
per stage from `python benchmarks/lensmaster_synthetic.py --workdir
workdirs/lensmaster_demo`): held-out inter-ocular NME 6.24% after stage 1
and 5.77% after stage 2 (FR@0.1 9.8%, AUC@0.1 0.478) against 28.63% for the
mean shape, 14 min wall for the whole command (~26 img/s); the encoder's
parameters stay bit-identical. With the encoder trained too: 5.34% / 4.81%
in 18.5 min (~13 img/s).
"""

import ml_collections

from jaxlm import models
from jaxlm.configs.common import base_config, synthetic

# DINOv3's block shape at Ti width: LayerScale, 4 registers, RoPE base 100,
# LayerNorm eps 1e-5
TINY_DINOV3 = 'Ti/16:depth=4:layerscale=1:registers=4:rope=100:eps=5'


def get_config(arg=None):
  del arg
  c = base_config()
  c.model = models.get('lensmaster').default_config()
  c.model.variant = TINY_DINOV3
  c.model.backbone_input = 256
  c.model.width = 64
  c.model.stages = 2
  c.data.image_size = 128
  c.data.num_anchors = 0  # every landmark, in layout order
  c.data.threads = 2
  c.data.train.syn98 = synthetic('syn98', 1_000_000, seed=1)
  c.data.eval.syn98 = synthetic('syn98', 256, seed=101, prompts='syn98')

  c.train.batch_size = 16
  c.train.steps = 800
  c.train.log_every = 20
  c.train.checkpoint_every = 400
  c.train.frozen = ('encoder',)
  c.optim = ml_collections.ConfigDict(dict(
      name='adam', lr=1e-3, b1=0.9, b2=0.999, weight_decay=0.0,
      warmup_steps=20, decay_at=(0.5,), decay_factor=0.5, grad_clip=0.0))
  return c
