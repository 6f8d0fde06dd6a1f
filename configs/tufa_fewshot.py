r"""Few-shot transfer of a trained TUFA to a new landmark layout (§6.2.4, §6.3.6).

  jaxlm train --config configs/tufa_fewshot.py --workdir workdirs/fewshot \
      --config.init.checkpoint=workdirs/demo --config.data.train_size=10 --eval

Starts from a trained multi-dataset model (`init.checkpoint`: a run folder
or one of its checkpoints; the model settings must match), computes the new
layout's mean shape from the few training faces, adds fresh (zero) semantic
alignment offsets for it and fine-tunes everything end to end.

Default: the demo model (`make demo`, trained on syn29/syn68/syn98) learns
the AFLW-19 scheme of `syn19`, which it only saw zero-shot, from
`train_size` faces. Measured with 10 faces, 200 steps at lr 5e-6: NME 18.0%
on syn19 (mean shape of the 10 faces: 32.4%); the demo's zero-shot 16.5%
prompts with a mean shape of 512 faces, which 10 faces cannot match on this
small synthetic model (lr 1e-4: 20.9%, 2e-5: 19.5%; larger rates forget). `configs/tufa_fewshot.py:wflw` is the thesis's protocol:
a TUFA pretrained on COFW, 300W and MERL-RAV learns WFLW's 98 points from
`train_size` random training faces (Table 6.9: 5.20% NME with 10 faces for
ViT-S/8); set `data.data_dir` and the pretrained run's model settings.
"""

import ml_collections

from jaxlm.configs import tufa_demo
from jaxlm.configs.common import synthetic, tfds


ARGS = ('wflw',)  # configs/tufa_fewshot.py:<arg>


def get_config(arg=None):
  c = tufa_demo.get_config()
  train_size = ml_collections.FieldReference(10)
  c.data.train_size = train_size
  c.init = ml_collections.ConfigDict(dict(checkpoint='', encoder=''))
  if arg == 'wflw':
    c.model.variant = 'S/8'
    c.data.image_size = 256
    c.data.num_anchors = 24
    c.data.data_dir = ''
    c.data.train = ml_collections.ConfigDict()
    c.data.train.wflw = tfds('wflw', 'wflw98', 'train', limit=train_size,
                             limit_seed=0)
    c.data.eval = ml_collections.ConfigDict()
    c.data.eval.wflw = tfds('wflw', 'wflw98', 'test', prompts='wflw')
  elif arg is None:
    c.data.train = ml_collections.ConfigDict()
    c.data.train.syn19 = synthetic('syn19', 5000, seed=3, limit=train_size)
    c.data.num_anchors = 19  # every point of the 19-point layout
    c.data.eval = ml_collections.ConfigDict()
    c.data.eval.syn19 = synthetic('syn19', 256, seed=1004, prompts='syn19')
  else:
    raise ValueError(f'unknown tufa_fewshot argument {arg!r} (none or wflw)')
  c.data.mean_shape_samples = 512  # capped by the few faces there are
  c.train.steps = 200
  c.train.checkpoint_every = 200
  c.optim.lr = 5e-6
  c.optim.warmup_steps = 0
  c.optim.decay_at = (0.8,)
  return c
