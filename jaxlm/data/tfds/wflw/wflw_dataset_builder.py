"""WFLW (98 landmarks) as pre-cropped faces in ArrayRecord."""

from __future__ import annotations

import functools

import tensorflow_datasets as tfds

from jaxlm.data.formats import wflw
from jaxlm.data.tfds.face_builder import FaceBuilder, FaceConfig


def _split(root, split, attribute=None, on_error=None):
  records = wflw.read_wflw(wflw.annotation_file(root, split),
                           root / 'WFLW_images', on_error=on_error)
  return (r for r in records
          if attribute is None or r.attributes[attribute] == 1)


_SPLITS = dict(train=functools.partial(_split, split='train'),
               test=functools.partial(_split, split='test'))
_SPLITS.update({f'test_{a}': functools.partial(_split, split='test',
                                               attribute=a)
                for a in wflw.ATTRIBUTES})


class Builder(FaceBuilder):
  """WFLW: 10,000 faces (7,500 train / 2,500 test), 98 landmarks."""

  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': 'Pre-cropped faces, JPEG bytes, ArrayRecord.'}
  ATTRIBUTES = wflw.ATTRIBUTES
  HOMEPAGE = 'https://wywu.github.io/projects/LAB/WFLW.html'
  BUILDER_CONFIGS = [FaceConfig(
      name='default', description='train, test and the six attribute test '
      'subsets (test_pose, test_expression, ...)', splits=_SPLITS,
      layout='wflw98')]
  MANUAL_DOWNLOAD_INSTRUCTIONS = """
  From https://wywu.github.io/projects/LAB/WFLW.html download
  WFLW_images.tar.gz and WFLW_annotations.tar.gz and extract both into
  manual_dir, giving:
    manual_dir/WFLW_images/<event>/<image>.jpg
    manual_dir/WFLW_annotations/list_98pt_rect_attr_train_test/
        list_98pt_rect_attr_{train,test}.txt
  """
