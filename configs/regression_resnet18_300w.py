r"""ResNet-18 direct regression on 300W, the recipe of paper 003.

  jaxlm build w300 --manual_dir ~/downloads/w300 --data_dir ~/tfds
  jaxlm train --config configs/regression_resnet18_300w.py --workdir RUN \
      --config.data.data_dir=~/tfds --eval

Sharif et al. (paper 003): a ResNet-18 with a greyscale first convolution,
global average pooling and Linear(512 -> 136) regresses the 68 points of
300W (`model.name='regression'`, `jaxlm/models/direct_regression.py`),
trained with the MSE on coordinates and Adam, with random rotation, crop /
resize, horizontal flip and colour jitter. Here: 224 px crops of the 300W
training set (LFPW + HELEN train, AFW: 3148 faces), every landmark of the
`300w68` layout per face, evaluated on the common, challenging and full test
sets (inter-ocular NME).

The paper does not give the input size, batch size, learning rate or its
schedule, epochs, early-stopping rule, augmentation ranges or the
initialisation; chosen here: 224 px (torchvision's ResNet input), batch 32,
Adam lr 1e-4 (b1 0.9, b2 0.999, no weight decay), 100 epochs with x0.1 at
epochs 80 and 90 and no early stopping, a network trained from scratch.
Augmentation on jaxlm's one-affine pipeline (`data.augment`, the official
SLPT/TUFA ranges, which the paper does not contradict): rotation
N(0, 15) deg clipped to +-30; crop scale N(1.2, 0.05) x box clipped to
[1.15, 1.25], resized to 224 px; shift N(0, 0.05) x box clipped to +-0.05;
horizontal flip p 0.5 with 300W's left/right point pairs (the layout's flip
permutation); colour jitter p 0.5: brightness N(0, 30) clipped to +-30,
contrast N(1, 0.3) clipped to [0.3, 1.3]. Occlusion and shear are off (not
in the paper); random greyscale is off too (the model sees grey anyway).

Not measured here (no 300W run yet). The paper's own claims (Table 1):
train MSE 0.0009, validation MSE 0.0012, NME 3.28%, 95.4% of landmarks
within 3 px and 98.2% within 5 px. They are mutually inconsistent: with
coordinates in [0, 1] of the crop (the paper does not say), an MSE of
0.0012 per coordinate is an RMS point error of sqrt(2 x 0.0012) = 0.049,
about 10 px at 224 px, which cannot leave 98% of the points within 5 px;
nor are the NME's normaliser or the input size stated. Do not read them as
targets.
"""

from jaxlm import models
from jaxlm.configs.common import base_config, tfds

W300_TRAIN_FACES = 3148


def get_config(arg=None):
  del arg
  c = base_config()
  c.model = models.get('regression').default_config()
  c.model.variant = 'resnet18'
  c.model.in_channels = 1  # greyscale, as the paper

  c.data.image_size = 224
  c.data.num_anchors = 0  # every landmark, in layout order
  c.data.mean_shape_samples = W300_TRAIN_FACES
  c.data.train.w300 = tfds('w300', '300w68', 'train')
  for split in ('common', 'challenging', 'full'):
    c.data.eval[f'w300_{split}'] = tfds('w300', '300w68', f'test_{split}',
                                        prompts='w300')
  a = c.data.augment
  a.rotation_std, a.rotation_max = 15.0, 30.0
  a.scale_mean, a.scale_std, a.scale_min, a.scale_max = 1.2, 0.05, 1.15, 1.25
  a.shift_std, a.shift_max = 0.05, 0.05
  a.flip_prob = 0.5
  a.grey_prob = 0.0
  a.colour_prob = 0.5
  a.brightness_std, a.brightness_max = 30.0, 30.0
  a.contrast_mean, a.contrast_std = 1.0, 0.3
  a.contrast_min, a.contrast_max = 0.3, 1.3
  a.occlusion_prob = 0.0
  a.shear_prob = 0.0

  epochs = 100
  c.train.batch_size = 32
  c.train.steps = epochs * W300_TRAIN_FACES // c.train.batch_size
  c.train.checkpoint_every = 1000
  c.optim.name = 'adam'
  c.optim.lr = 1e-4
  c.optim.b1, c.optim.b2 = 0.9, 0.999
  c.optim.weight_decay = 0.0
  c.optim.warmup_steps = 0
  c.optim.decay_at = (0.8, 0.9)
  c.optim.decay_factor = 0.1
  c.optim.grad_clip = 0.0
  return c
