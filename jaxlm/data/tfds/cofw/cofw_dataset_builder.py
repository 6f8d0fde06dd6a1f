"""COFW (29 landmarks, occlusion labels) and COFW68."""

from __future__ import annotations

import functools

import tensorflow_datasets as tfds

from jaxlm.data.formats import cofw
from jaxlm.data.tfds.face_builder import FaceBuilder, FaceConfig


def _cofw68(root, on_error=None):
  return cofw.read_cofw68(root, on_error=on_error)


class Builder(FaceBuilder):
  """COFW: 1,345 training and 507 test faces, 29 landmarks, occlusion."""

  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': 'Pre-cropped faces, JPEG bytes, ArrayRecord.'}
  HOMEPAGE = 'https://data.caltech.edu/records/bc0bf-nc666'
  BUILDER_CONFIGS = [
      FaceConfig(name='cofw29', description='the colour release: train, '
                 'test (29 points; crop 1.32 x the landmark box)',
                 layout='cofw29', crop_factor=1.32,
                 splits=dict(train=functools.partial(cofw.read_cofw,
                                                     split='train'),
                             test=functools.partial(cofw.read_cofw,
                                                    split='test'))),
      FaceConfig(name='cofw68', description='COFW68: the 507 test faces '
                 're-annotated with 68 (300W) points', layout='300w68',
                 splits=dict(test=_cofw68)),
  ]
  MANUAL_DOWNLOAD_INSTRUCTIONS = """
  Download the colour COFW release (COFW_train_color.mat,
  COFW_test_color.mat) from https://data.caltech.edu/records/bc0bf-nc666
  and, for the cofw68 config, COFW68_Data from
  https://github.com/golnazghiasi/cofw68-benchmark. Put them so that
    manual_dir/COFW_train_color.mat
    manual_dir/COFW_test_color.mat
    manual_dir/COFW68_Data/test_annotations/<i>_points.mat
    manual_dir/COFW68_Data/cofw68_test_bboxes.mat
  """
