"""MERL-RAV (68 landmarks with unoccluded / external / self-occluded labels)."""

from __future__ import annotations

import functools

import tensorflow_datasets as tfds

from jaxlm.data.formats import merlrav
from jaxlm.data.tfds.face_builder import FaceBuilder, FaceConfig


def _split(root, split, subset=None, on_error=None):
  return (r for r in merlrav.read_merlrav(root, split, on_error=on_error)
          if subset is None or r.attributes['subset'] == subset)


_SPLITS = dict(train=functools.partial(_split, split='train'),
               test=functools.partial(_split, split='test'))
_SPLITS.update({f'test_{s}': functools.partial(_split, split='test',
                                               subset=s)
                for s in merlrav.SUBSETS})


class Builder(FaceBuilder):
  """MERL-RAV: 15,449 training and 3,865 test faces of AFLW, 68 landmarks."""

  name = 'merl_rav'
  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': 'Pre-cropped faces, JPEG bytes, ArrayRecord.'}
  ATTRIBUTES = ('pose',)  # index into formats.merlrav.POSES
  HOMEPAGE = 'https://github.com/abhi1kumar/MERL-RAV_dataset'
  BUILDER_CONFIGS = [FaceConfig(
      name='default', description='train, test and the test subsets '
      'test_frontal, test_half_profile, test_profile; self-occluded points '
      'have NaN positions', splits=_SPLITS, layout='merlrav68')]
  MANUAL_DOWNLOAD_INSTRUCTIONS = """
  Follow https://github.com/abhi1kumar/MERL-RAV_dataset to combine the AFLW
  images with the MERL-RAV labels (organize_merl_rav_using_aflw_and_our_
  labels.py), then put the result so that
    manual_dir/merl_rav_organized/{frontal,lefthalf,righthalf,left,right}/
        {trainset,testset}/<name>.{jpg,pts}
  """

  def attribute_code(self, rec, name):
    return merlrav.POSES.index(rec.attributes['pose'])
