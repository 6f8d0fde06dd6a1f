r"""DSLPT with HRNetW18C on WFLW, the recipe of thesis §5.3 (Table 5.1).

  jaxlm build wflw --manual_dir ~/downloads/wflw --data_dir ~/tfds
  jaxlm train --config configs/dslpt_hrnet_wflw.py --workdir RUN \
      --config.data.data_dir=~/tfds

256 px crops, 98 landmarks, 7x7 patches, 6 layers, 3 stages; the first
patch's half-size is 1/8 of the image and later ones follow the predicted
variances (h' = h * clip(12 max(v_x, v_y), 0.5, 0.7)). Gaussian NLL loss
with stage weights 0.2 / 0.3 / 0.5; AdamW lr 5e-4 (betas 0.9, 0.95, weight
decay 0.01), x0.1 at epochs 80 and 90 of 100, batch 16. `jaxlm predict
--json` reports each landmark's standard deviation in pixels.

Expected (thesis Table 5.1, HRNetW18C): inter-ocular NME about 4.01% on the
WFLW test set.
"""

from jaxlm.configs.common import slpt_config, tfds

WFLW_TRAIN_FACES = 7500


def get_config(arg=None):
  del arg
  c = slpt_config('dslpt', 'hrnet')
  c.data.train.wflw = tfds('wflw', 'wflw98', 'train')
  c.data.eval.wflw = tfds('wflw', 'wflw98', 'test', prompts='wflw')
  c.data.mean_shape_samples = WFLW_TRAIN_FACES
  epochs = 100
  c.train.batch_size = 16
  c.train.steps = epochs * WFLW_TRAIN_FACES // c.train.batch_size
  c.train.checkpoint_every = 5000
  return c
