"""300W (68 landmarks): the standard splits, 300W-private and Masked 300W."""

from __future__ import annotations

import functools

import tensorflow_datasets as tfds

from jaxlm.data.formats import ibug
from jaxlm.data.tfds.face_builder import FaceBuilder, FaceConfig


def _split(root, folders, on_error=None):
  return ibug.read_pts_folders(root, folders, on_error=on_error)


def _splits(prefix='', **names):
  return {name: functools.partial(
      _split, folders=tuple(prefix + f for f in ibug.SPLITS_300W[key]))
          for name, key in names.items()}


class Builder(FaceBuilder):
  """300W: 3,148 training and 689 test faces with 68 landmarks."""

  name = 'w300'
  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': 'Pre-cropped faces, JPEG bytes, ArrayRecord.'}
  HOMEPAGE = 'https://ibug.doc.ic.ac.uk/resources/300-W/'
  BUILDER_CONFIGS = [
      FaceConfig(name='default',
                 description='train (LFPW+HELEN train, AFW), test_common, '
                 'test_challenging, test_full', layout='300w68',
                 splits=_splits(train='train', test_common='common',
                                test_challenging='challenging',
                                test_full='full')),
      FaceConfig(name='private', description='300W-private (the 300W '
                 'competition set): test_indoor, test_outdoor, test',
                 layout='300w68',
                 splits=_splits(test_indoor='private_indoor',
                                test_outdoor='private_outdoor',
                                test='private')),
      FaceConfig(name='masked', description='Masked 300W: the 300W test '
                 'faces with synthetic masks', layout='300w68',
                 splits=_splits('masked_300w/', test_common='common',
                                test_challenging='challenging',
                                test_full='full')),
  ]
  MANUAL_DOWNLOAD_INSTRUCTIONS = """
  From https://ibug.doc.ic.ac.uk/resources/300-W/ download the 300W
  training data (afw, helen, ibug, lfpw) and, for the `private` config, the
  300W competition set (300W/01_Indoor, 300W/02_Outdoor). Put them so that
    manual_dir/afw/*.{jpg,pts}
    manual_dir/helen/{trainset,testset}/*.{jpg,pts}
    manual_dir/lfpw/{trainset,testset}/*.{png,pts}
    manual_dir/ibug/*.{jpg,pts}
    manual_dir/300W/01_Indoor/*.{png,pts}, manual_dir/300W/02_Outdoor/...
  For the `masked` config put the Masked 300W test images (same names and
  .pts files as 300W) under manual_dir/masked_300w/ in the same layout
  (lfpw/testset, helen/testset, ibug).
  """
