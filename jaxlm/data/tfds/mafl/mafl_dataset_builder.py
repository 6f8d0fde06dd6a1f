"""CelebA-aligned MAFL subsets (5 landmarks) for zero-shot evaluation."""

from __future__ import annotations

import functools

import tensorflow_datasets as tfds

from jaxlm.data.formats import celeba
from jaxlm.data.tfds.face_builder import FaceBuilder, FaceConfig


class Builder(FaceBuilder):
  """MAFL: 19,000 training and 1,000 test faces of CelebA-aligned."""

  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': 'Pre-cropped faces, JPEG bytes, ArrayRecord.'}
  HOMEPAGE = 'https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html'
  BUILDER_CONFIGS = [FaceConfig(
      name='default', description='train, test; the aligned image is the '
      'face box', layout='celeba5', box_rule='annotation', crop_factor=1.0,
      splits={s: functools.partial(celeba.read_celeba, split=s)
              for s in ('train', 'test')})]
  MANUAL_DOWNLOAD_INSTRUCTIONS = """
  From the CelebA homepage download img_align_celeba.zip and
  Anno/list_landmarks_align_celeba.txt; get MAFL's training.txt and
  testing.txt (Zhang et al., ECCV 2014). Put them so that
    manual_dir/img_align_celeba/<000001>.jpg
    manual_dir/Anno/list_landmarks_align_celeba.txt
    manual_dir/MAFL/{training,testing}.txt
  """
