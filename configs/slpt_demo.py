r"""SLPT or DSLPT, small, on jaxlm's synthetic faces (minutes on a CPU).

  jaxlm train --config configs/slpt_demo.py --workdir workdirs/slpt --eval
  jaxlm train --config configs/slpt_demo.py:dslpt --workdir workdirs/dslpt \
      --eval

The coarse-to-fine patch transformer on syn29 faces (COFW's index scheme)
with the thesis's HRNetW18C-lite backbone at 64 px (a 16 x 16 map), trained
from scratch; 3 inherent relation layers of width 128; 7x7 patches; three
stages sharing their weights (half-sizes 1/8, 1/16, 1/32 of the image).
Evaluated on held-out faces against the mean-shape baseline (about 29%).

Measured on a 2-core CPU (1200 steps of 16 faces, the two runs sharing the
CPU at ~14 img/s each): see the closing note of the SLPT issue and the
README; a ViT backbone trained from scratch (`vit:Ti/8:depth=3`) did not
get below the mean shape in 1000-3000 steps, a CNN does within a few
hundred.
"""

from jaxlm.configs.common import slpt_config, synthetic


ARGS = ('slpt', 'dslpt')  # configs/slpt_demo.py:<arg>


def get_config(arg=None):
  name = arg or 'slpt'
  if name not in ('slpt', 'dslpt'):
    raise ValueError(f'configs/slpt_demo.py:{name}: expected slpt or dslpt')
  c = slpt_config(name, 'hrnet_lite')
  c.model.width = 128
  c.model.num_heads = 4
  c.model.num_layers = 3
  c.model.mlp_dim = 512
  c.data.train.syn29 = synthetic('syn29', 1_000_000, seed=3)
  c.data.eval.syn29 = synthetic('syn29', 256, seed=103, prompts='syn29')
  c.data.image_size = 64
  c.data.threads = 2

  c.train.batch_size = 16
  c.train.steps = 1200
  c.train.log_every = 10
  c.train.checkpoint_every = 400
  c.optim.warmup_steps = 100
  c.optim.grad_clip = 1.0
  return c
