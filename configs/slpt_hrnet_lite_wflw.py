r"""SLPT with HRNetW18C-lite on WFLW, the recipe of thesis §4.3 (Table 4.1).

  jaxlm build wflw --manual_dir ~/downloads/wflw --data_dir ~/tfds
  jaxlm train --config configs/slpt_hrnet_lite_wflw.py --workdir RUN \
      --config.data.data_dir=~/tfds

256 px crops, 98 landmarks, 7x7 patches, 6 inherent relation layers, 3
coarse-to-fine stages (half-sizes 1/8, 1/16, 1/32 of the image) sharing one
transformer; Adam lr 1e-3, x0.1 at epochs 120 and 140 of 150, batch 16.
The mean face of the training set (measured from `data.mean_shape_samples`
faces) is the first stage's initial shape. The backbone starts from random
weights here (the thesis starts it from ImageNet; convert an official
checkpoint with `jaxlm convert slpt` to evaluate the published model).

Expected (thesis Table 4.1, HRNetW18C-lite): inter-ocular NME 4.14% on the
WFLW test set, FR@0.1 2.76%, AUC@0.1 0.595.
"""

from jaxlm.configs.common import slpt_config, tfds

WFLW_TRAIN_FACES = 7500


def get_config(arg=None):
  del arg
  c = slpt_config('slpt', 'hrnet_lite')
  c.data.train.wflw = tfds('wflw', 'wflw98', 'train')
  c.data.eval.wflw = tfds('wflw', 'wflw98', 'test', prompts='wflw')
  c.data.mean_shape_samples = WFLW_TRAIN_FACES
  epochs = 150
  c.train.batch_size = 16
  c.train.steps = epochs * WFLW_TRAIN_FACES // c.train.batch_size
  c.train.checkpoint_every = 5000
  return c
