r"""SLPT or DSLPT, tiny, on jaxlm's synthetic faces (runs in minutes on CPU).

  jaxlm train --config configs/slpt_demo.py --workdir workdirs/slpt --eval
  jaxlm train --config configs/slpt_demo.py:dslpt --workdir workdirs/dslpt \
      --eval

The coarse-to-fine patch transformer on syn29 faces (COFW's index scheme):
a small ViT backbone (Ti/8, 3 blocks: a 12 x 12 map at 96 px) stands in for
the HRNet to fit a 2-core CPU; 3 inherent relation layers of width 128; 7x7
patches; three stages sharing their weights. Evaluated on held-out faces
against the mean-shape baseline.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import slpt_config, synthetic  # noqa: E402


def get_config(arg=None):
  name = arg or 'slpt'
  c = slpt_config(name, 'vit:Ti/8:depth=3')
  c.model.width = 128
  c.model.num_heads = 4
  c.model.num_layers = 3
  c.model.mlp_dim = 512
  c.data.train.syn29 = synthetic('syn29', 1_000_000, seed=3)
  c.data.eval.syn29 = synthetic('syn29', 256, seed=103, prompts='syn29')
  c.data.image_size = 96
  c.data.threads = 2

  c.train.batch_size = 16
  c.train.steps = 1000
  c.train.log_every = 10
  c.train.checkpoint_every = 500
  c.optim.lr = 1e-3 if name == 'slpt' else 5e-4
  c.optim.warmup_steps = 100
  c.optim.grad_clip = 1.0
  return c
