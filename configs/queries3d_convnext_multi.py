r"""Continuous landmarks from 3D queries (paper 002) on WFLW, 300W, COFW and
MERL-RAV at once, ConvNeXt-T + transformer predictor.

Build the four datasets once from the downloaded files (instructions:
`jaxlm build NAME --help` and jaxlm/data/tfds/<name>/), then train:

  for d in wflw w300 merl_rav cofw/cofw29; do
    jaxlm build $d --manual_dir ~/downloads/$d --data_dir ~/tfds; done
  jaxlm train --config configs/queries3d_convnext_multi.py \
      --workdir gs://.../run --config.data.data_dir=~/tfds --eval

One model for every layout: each dataset's landmarks are 3D queries on the
canonical face (`jaxlm/data/query_tables`: WFLW-98, 300W-68, MERL-RAV-68,
COFW-29), 32 random queries per face from each mixed batch; the feature
extractor is ConvNeXt-T at 224 px (paper §4.7: the transformer predictor,
4 blocks of 8 heads at width 768, queries attending to each other),
trained with the Gaussian NLL (§3), AdamW 1e-4, batch 32, 100 epochs with
x0.1 decays at 80% and 90%. `jaxlm eval` reports NME / FR / AUC per
dataset (300W common / challenging / full; MERL-RAV box-normalised), and
any other layout with a query table (e.g. `jaxlm predict --layout aflw19`)
is zero-shot.

Published (paper 002, Table 1, ConvNeXt + transformer on its "all data":
in-the-wild sparse and studio dense annotations, and by §4 not 300W, which
this config does train on; Table 4 gives 3.63% on 300W common for
ConvNeXt + MLP trained on 300W alone): 300W common / challenging NME
2.87% / 4.42%. Not measured here: the datasets cannot be downloaded on the
machines this repository is tested on. For ImageNet weights in the
extractor, convert them and set `init.encoder`:

  jaxlm convert convnext --src convnext-tiny-224/model.safetensors \
      --dst ~/weights/convnext_tiny
  ... --config.init.encoder=~/weights/convnext_tiny

(empty: random weights, with a warning). "100 epochs" counts the four
training sets' faces; the mixture draws the datasets equally (`weight` 1
each), so the smaller ones repeat more often.
"""

import ml_collections


from jaxlm import models
from jaxlm.configs.common import base_config, tfds

# Training-set sizes, for epoch-based schedules.
_TRAIN_FACES = dict(wflw=7500, w300=3148, merlrav=15449, cofw=1345)


def get_config(arg=None):
  del arg
  c = base_config()
  c.model = models.get('queries3d').default_config()
  c.model.extractor = 'convnext'
  c.model.variant = 'tiny'
  c.model.predictor = 'transformer'
  c.model.predictor_width = 768
  c.model.predictor_heads = 8
  c.model.drop_path = 0.1

  c.data.image_size = 224
  c.data.train.wflw = tfds('wflw', 'wflw98', 'train')
  c.data.train.w300 = tfds('w300', '300w68', 'train')
  c.data.train.merlrav = tfds('merl_rav', 'merlrav68', 'train')
  c.data.train.cofw = tfds('cofw/cofw29', 'cofw29', 'train')
  c.data.eval.wflw = tfds('wflw', 'wflw98', 'test', prompts='wflw')
  c.data.eval.w300_common = tfds('w300', '300w68', 'test_common',
                                 prompts='w300')
  c.data.eval.w300_challenging = tfds('w300', '300w68', 'test_challenging',
                                      prompts='w300')
  c.data.eval.w300_full = tfds('w300', '300w68', 'test_full', prompts='w300')
  c.data.eval.cofw = tfds('cofw/cofw29', 'cofw29', 'test', prompts='cofw')
  c.data.eval.merlrav = tfds('merl_rav', 'merlrav68', 'test',
                             prompts='merlrav', normaliser='box')
  c.data.num_anchors = 32  # random queries per face (COFW has 29: padded)
  c.data.mask_invisible = False  # MERL-RAV's unannotated points weigh 0

  epochs = 100
  c.train.batch_size = 32
  c.train.steps = epochs * sum(_TRAIN_FACES.values()) // c.train.batch_size
  c.train.checkpoint_every = 5000
  c.optim.lr = 1e-4
  c.optim.weight_decay = 0.05
  c.optim.warmup_steps = 1000
  c.optim.decay_at = (0.8, 0.9)
  c.optim.grad_clip = 1.0
  c.init = ml_collections.ConfigDict(dict(encoder=''))
  return c
