"""AFLW-19 (19 landmarks): full and frontal test sets."""

from __future__ import annotations

import functools

import tensorflow_datasets as tfds

from jaxlm.data.formats import aflw19
from jaxlm.data.tfds.face_builder import FaceBuilder, FaceConfig


class Builder(FaceBuilder):
  """AFLW-19: 20,000 training and 4,836 test faces (1,314 frontal)."""

  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': 'Pre-cropped faces, JPEG bytes, ArrayRecord.'}
  HOMEPAGE = 'https://www.tugraz.at/institute/icg/research/team-bischof/lrs/downloads/aflw/'
  BUILDER_CONFIGS = [FaceConfig(
      name='default', description='train, test (full), test_frontal; '
      'cropped around the annotated box', layout='aflw19',
      box_rule='annotation',
      splits={s: functools.partial(aflw19.read_aflw19, split=s)
              for s in ('train', 'test', 'test_frontal')})]
  MANUAL_DOWNLOAD_INSTRUCTIONS = """
  Download AFLW (flickr/ images) from its homepage and the 19-point
  annotation AFLWinfo_release.mat (Zhu et al., CVPR 2016, distributed with
  the LAB / SAN code). Put them so that
    manual_dir/AFLWinfo_release.mat
    manual_dir/flickr/{0,2,3}/<image>.jpg
  """
