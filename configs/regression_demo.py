r"""ResNet-18 direct regression (paper 003), small, on synthetic faces.

  jaxlm train --config configs/regression_demo.py \
      --workdir workdirs/regression_demo --eval

The greyscale ResNet-18 -> Linear(512 -> 136) of paper 003
(`configs/regression_resnet18_300w.py` for 300W) on syn68 faces (300W's
index scheme) at 224 px, trained from scratch with the MSE and Adam, every
landmark per face (Adam lr 1e-3 after 20 warmup steps, x0.1 at 80%);
evaluated on 256 held-out syn68 faces against the mean-shape baseline.

Measured on a 2-core CPU: 640 steps of 16 faces (10,240 faces) in 26 min
wall, whole command (9.2 img/s alone; the first ~15 minutes shared the CPU
with a test run). Held-out inter-ocular NME 12.95% (FR@0.1 62.1%, AUC@0.1
0.075) against 29.13% for the mean shape; training MSE 0.0027 and batch NME
14.8% at the end. A quarter of that budget is not enough: 160 steps gave
29.59% (the network had learnt the mean face, not yet to follow the image).
"""

from jaxlm import models
from jaxlm.configs.common import base_config, synthetic


def get_config(arg=None):
  del arg
  c = base_config()
  c.model = models.get('regression').default_config()
  c.data.image_size = 224
  c.data.num_anchors = 0  # every landmark, in layout order
  c.data.threads = 2
  c.data.train.syn68 = synthetic('syn68', 1_000_000, seed=2)
  c.data.eval.syn68 = synthetic('syn68', 256, seed=102, prompts='syn68')

  c.train.batch_size = 16
  c.train.steps = 640
  c.train.log_every = 10
  c.train.checkpoint_every = 320
  c.optim.name = 'adam'
  c.optim.lr = 1e-3
  c.optim.weight_decay = 0.0
  c.optim.warmup_steps = 20
  c.optim.decay_at = (0.8,)
  c.optim.decay_factor = 0.1
  return c
