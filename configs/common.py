"""Defaults shared by the configs (`from jaxlm.configs.common import ...`).

A config's `model` section starts from its family's defaults
(`jaxlm.models.get(name).default_config()`): the model settings are defined
once, in the family's module.
"""

import ml_collections

from jaxlm import models


def base_config() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.seed = 0

  c.model = models.get('tufa').default_config()

  c.data = ml_collections.ConfigDict()
  c.data.image_size = 256
  c.data.num_anchors = 24  # N_a: 25% of 98 (thesis §6.2.1)
  c.data.mask_invisible = False  # loss weight 0 on self-occluded points
  c.data.mean_shape_samples = 512
  # 3D-query families: synthetic layouts' query tables without their
  # annotation conventions (left for a query deformer to learn)
  c.data.semantic_queries = False
  c.data.workers = 0  # grain worker processes (0: decode in-process)
  c.data.threads = 1
  c.data.data_dir = ''  # TFDS data dir of `source='tfds'` datasets
  # Official augmentation of TFDS faces (jaxlm/data/augment.py); synthetic
  # faces are used as rendered.
  c.data.augment = ml_collections.ConfigDict(dict(
      rotation_std=15.0, rotation_max=30.0, scale_mean=1.2, scale_std=0.05,
      scale_min=1.15, scale_max=1.25, shift_std=0.05, shift_max=0.05,
      flip_prob=0.5, grey_prob=0.2, colour_prob=0.5, brightness_std=30.0,
      brightness_max=30.0, contrast_mean=1.0, contrast_std=0.3,
      contrast_min=0.3, contrast_max=1.3, occlusion_prob=0.5,
      occlusion_mean=0.2, occlusion_std=0.08, shear_prob=1 / 3,
      shear_std=0.2, shear_max=0.2,
      # off unless a recipe sets them (the heatmap cascade's)
      gamma_prob=0.0, gamma_min=0.8, gamma_max=1.2, blur_prob=0.0,
      blur_min=5, blur_max=19, noise_prob=0.0, noise_std_min=10.0,
      noise_std_max=14.2))
  c.data.train = ml_collections.ConfigDict()
  c.data.eval = ml_collections.ConfigDict()

  # Device mesh (jaxlm/train/sharding.py); -1: all remaining devices.
  c.mesh = ml_collections.ConfigDict(dict(data=-1, fsdp=1, tensor=1))

  c.train = ml_collections.ConfigDict(dict(
      batch_size=16, steps=1000, log_every=10, checkpoint_every=500,
      keep_checkpoints=3,
      ema_decay=0.0,  # > 0: keep an EMA of the params; eval/predict use it
      # parameter-path patterns kept bit-identical (jaxlm/train/frozen.py),
      # e.g. ('encoder',); '!pattern' unfreezes
      frozen=(),
      log_example_ids=False,  # WORKDIR/examples.jsonl: faces of each step
      # > 0: every that many steps and after the last, evaluate data.eval
      # as `jaxlm eval` would (eval/<dataset>/nme|fr|auc to metrics.jsonl
      # and TensorBoard, with overlay images); jaxlm/train/evaluator.py
      eval_every=0,
      # e.g. 'eval/wflw/nme' (NME and FR: lower is better; AUC: higher):
      # keep the checkpoint with its best value besides the newest
      # keep_checkpoints; `--checkpoint WORKDIR/best` names it. Every
      # evaluated step is then saved too.
      best_metric=''))

  c.optim = ml_collections.ConfigDict(dict(
      name='adamw', lr=5e-5, b1=0.9, b2=0.999, weight_decay=1e-4,
      warmup_steps=0, decay_at=(0.8, 0.9), decay_factor=0.1, grad_clip=0.0))

  c.eval = ml_collections.ConfigDict(dict(
      batch_size=32, normaliser='inter_ocular', fr_alpha=0.1, overlays=8))
  return c


def synthetic(layout, size, seed, **kw):
  return ml_collections.ConfigDict(dict(source='synthetic', layout=layout,
                                        size=size, seed=seed, **kw))


def tfds(name, layout, split, **kw):
  return ml_collections.ConfigDict(dict(source='tfds', tfds_name=name,
                                        layout=layout, split=split, **kw))


def slpt_config(name='slpt', backbone='hrnet_lite'):
  """Defaults of SLPT (thesis ch. 4) / DSLPT (ch. 5) configs: the shared
  base with their model, no anchor masking and their optimizers."""
  c = base_config()
  c.model = models.get(name).default_config()
  c.model.variant = backbone  # hrnet_lite | hrnet | resnet34 | resnet50 | vit:<v>
  c.data.num_anchors = 0  # every landmark, in layout order
  if name == 'slpt':  # Adam 1e-3, x0.1 at epochs 120 and 140 of 150
    c.optim = ml_collections.ConfigDict(dict(
        name='adam', lr=1e-3, b1=0.9, b2=0.999, weight_decay=0.0,
        warmup_steps=0, decay_at=(120 / 150, 140 / 150), decay_factor=0.1,
        grad_clip=0.0))
  else:  # AdamW 5e-4 (0.9, 0.95), wd 0.01, x0.1 at epochs 80 and 90 of 100
    c.optim = ml_collections.ConfigDict(dict(
        name='adamw', lr=5e-4, b1=0.9, b2=0.95, weight_decay=0.01,
        warmup_steps=0, decay_at=(0.8, 0.9), decay_factor=0.1, grad_clip=0.0))
  return c
