r"""Continuous landmarks from 3D queries (paper 002), tiny, on synthetic faces.

  jaxlm train --config configs/queries3d_demo.py \
      --workdir workdirs/queries3d_demo --eval

A tiny ConvNeXt feature extractor and the MLP predictor, prompted with
points of the canonical 3D face, trained on syn98 + syn68 + syn29 (WFLW's,
300W's and COFW's index schemes, each with its annotation convention, one
query table each) plus `syndense` (2048 points of the canonical face carried
to every identity), 64 random queries per face; the same budget as the TUFA
demo (`configs/tufa_demo.py`: 2000 steps of 16 faces at 96 px). Evaluated
on held-out faces of each trained layout and zero-shot on syn19 (AFLW-19's
scheme, never trained on) from its 3D query table; `benchmarks/
queries3d_synthetic.py` adds the dense, curve, off-surface and confidence
measures.

Expected: see the measured figures below (filled in from the run).
"""

from jaxlm import models
from jaxlm.configs.common import base_config, synthetic


def get_config(arg=None):
  del arg
  c = base_config()
  c.model = models.get('queries3d').default_config()
  c.model.extractor = 'convnext'
  c.model.variant = 'tiny:depths=1-1-3-1:dims=32-64-128-256'
  c.model.predictor = 'mlp'
  c.model.predictor_width = 256

  c.data.train.syn98 = synthetic('syn98', 1_000_000, seed=1)
  c.data.train.syn68 = synthetic('syn68', 1_000_000, seed=2)
  c.data.train.syn29 = synthetic('syn29', 1_000_000, seed=3)
  c.data.train.syndense = synthetic('syndense', 1_000_000, seed=5)
  c.data.eval.syn98 = synthetic('syn98', 256, seed=101, prompts='syn98')
  c.data.eval.syn68 = synthetic('syn68', 256, seed=102, prompts='syn68')
  c.data.eval.syn29 = synthetic('syn29', 256, seed=103, prompts='syn29')
  c.data.eval.syn19_zero_shot = synthetic('syn19', 256, seed=104,
                                          prompts='mean_shape')
  c.data.image_size = 96
  # 64 random queries per face; syn29's 29 points are padded (weight 0).
  c.data.num_anchors = 64
  # Self-occluded points keep their (exact) positions in the loss: the model
  # learns to give them a larger σ. Points without a position weigh 0.
  c.data.mask_invisible = False
  c.data.threads = 2

  c.train.batch_size = 16
  c.train.steps = 2000
  c.train.log_every = 10
  c.train.checkpoint_every = 500

  c.optim.lr = 1e-3
  c.optim.decay_at = (0.75, 0.9)
  c.optim.weight_decay = 1e-4
  c.optim.warmup_steps = 100
  c.optim.grad_clip = 1.0
  return c
