r"""TUFA, tiny, on jaxlm's synthetic faces: the `make demo` run.

  jaxlm train --config configs/tufa_demo.py --workdir workdirs/demo --eval

Trains a tiny TUFA (ViT Ti/16 with 4 blocks, 3 decoder layers) on three
synthetic datasets at once (syn98, syn68, syn29: the index schemes of WFLW,
300W and COFW, each with its own annotation convention, one semantic
alignment table each), then evaluates on held-out faces of each, and
zero-shot on syn19 (AFLW-19's scheme), a layout never trained on.

Expected on a 2-core CPU (`make demo`: 7 min 40 s from a clean clone with
a warm pip cache; training 2000 steps of 16 faces at 96 px, ~84 img/s):
inter-ocular NME 15-16.5% on the trained layouts and about 16.5% zero-shot
on syn19, against about 29% for predicting the mean shape. From scratch the
decoder first learns the mean shape and only then to follow the image, so
longer runs keep improving (13-14% after 2400 steps).
"""

from jaxlm.configs.common import base_config, synthetic


def get_config(arg=None):
  del arg
  c = base_config()
  c.model.variant = 'Ti/16:depth=4'
  c.model.decoder_layers = 3
  c.model.decoder_heads = 6
  c.model.decoder_mlp = 768
  # No DINO weights here: start the position embedding as sin/cos of the
  # patch centres, strong enough to survive the patch embedding.
  c.model.pos_init = 'sincos'
  c.model.pos_init_scale = 4.0

  c.data.train.syn98 = synthetic('syn98', 1_000_000, seed=1)
  c.data.train.syn68 = synthetic('syn68', 1_000_000, seed=2)
  c.data.train.syn29 = synthetic('syn29', 1_000_000, seed=3)
  c.data.eval.syn98 = synthetic('syn98', 256, seed=101, prompts='syn98')
  c.data.eval.syn68 = synthetic('syn68', 256, seed=102, prompts='syn68')
  c.data.eval.syn29 = synthetic('syn29', 256, seed=103, prompts='syn29')
  c.data.eval.syn19_zero_shot = synthetic('syn19', 256, seed=104,
                                          prompts='mean_shape')
  c.data.image_size = 96  # 6x6 tokens: more steps in the 2-core CPU budget
  c.data.num_anchors = 29  # every point of syn29, 29 of syn68/syn98
  c.data.threads = 2

  c.train.batch_size = 16
  c.train.steps = 2000
  c.train.log_every = 10
  c.train.checkpoint_every = 500

  c.optim.lr = 4e-4
  c.optim.decay_at = (0.75, 0.9)
  c.optim.weight_decay = 1e-4
  c.optim.warmup_steps = 100
  c.optim.grad_clip = 1.0
  return c
