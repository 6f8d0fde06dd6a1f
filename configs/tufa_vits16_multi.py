r"""TUFA ViT-S/16, multi-dataset recipe of thesis §6.3.3 (Table 6.1, 6.12).

Build the four datasets once from the downloaded files (instructions:
`jaxlm build NAME --help` and jaxlm/data/tfds/<name>/), then train:

  for d in wflw w300 merl_rav cofw/cofw29; do
    jaxlm build $d --manual_dir ~/downloads/$d --data_dir ~/tfds; done
  jaxlm train --config configs/tufa_vits16_multi.py --workdir gs://.../run \
      --config.data.data_dir=~/tfds     # or gs://bucket/tfds

Trains on the training sets of WFLW (98), 300W (68), MERL-RAV (68) and COFW
(29) at once, one semantic-alignment table each; DINO ViT-S/16 encoder
(`init.encoder`: a converted DINO checkpoint), AdamW lr 5e-5, batch 16,
100 epochs with x0.1 decays at epochs 80 and 90, 24 anchors per face.
Evaluated on WFLW, 300W (common/challenging/full), COFW.

Expected (thesis, ViT-S/8 in Table 6.12; S/16 slightly worse): inter-ocular
NME ~3.9-4.0% WFLW, ~2.95-3.0% 300W full, ~3.1% COFW; NME_box ~1.5% MERL-RAV.
Set `init.encoder` to a converted DINO checkpoint (`jaxlm convert dino
--src dino_deitsmall16_pretrain.pth --dst DIR`); without it the encoder
starts from random weights (a warning says so).
Fewer datasets: `--config.data.train_only=wflw` (or `wflw,w300`) trains and
evaluates on those only; `--config.data.train.cofw.weight=0` drops COFW.
`train.steps` stays 100 epochs of all four: set it for the faces left
(100 epochs of WFLW alone: `--config.train.steps=46875`).
"""

import ml_collections

from jaxlm.configs.common import base_config, tfds

# Training-set sizes, for epoch-based schedules.
_TRAIN_FACES = dict(wflw=7500, w300=3148, merlrav=15449, cofw=1345)


def get_config(arg=None):
  del arg
  c = base_config()
  c.model.variant = 'S/16'
  c.data.train.wflw = tfds('wflw', 'wflw98', 'train')
  c.data.train.w300 = tfds('w300', '300w68', 'train')
  c.data.train.merlrav = tfds('merl_rav', 'merlrav68', 'train')
  c.data.train.cofw = tfds('cofw/cofw29', 'cofw29', 'train')
  c.data.eval.wflw = tfds('wflw', 'wflw98', 'test', prompts='wflw')
  c.data.eval.w300_full = tfds('w300', '300w68', 'test_full', prompts='w300')
  c.data.eval.cofw = tfds('cofw/cofw29', 'cofw29', 'test', prompts='cofw')
  c.data.eval.merlrav = tfds('merl_rav', 'merlrav68', 'test',
                             prompts='merlrav', normaliser='box')
  c.init = ml_collections.ConfigDict(dict(encoder=''))
  epochs = 100
  c.train.batch_size = 16
  c.train.steps = epochs * sum(_TRAIN_FACES.values()) // c.train.batch_size
  c.train.checkpoint_every = 5000
  c.optim.lr = 5e-5
  c.optim.decay_at = (0.8, 0.9)
  return c
