"""TFDS's own builder test case on fake data in each dataset's original format.

Each case writes a small dataset with jaxlm.data.formats.fake (the real
layout, file formats and naming), builds it with the builder (ArrayRecord)
and lets tfds.testing check splits, counts, reloading and config defaults.
TFDS reads ArrayRecord only through `as_data_source` (its `as_dataset`
raises NotImplementedError for it), so the per-split example check reads
through the data source: counts, feature shapes and dtypes, decodable
JPEGs, and no example shared by two splits that should be disjoint.
"""

import hashlib
import itertools
import tempfile
from unittest import mock

import cv2
import numpy as np
import pytest

tfds = pytest.importorskip('tensorflow_datasets')
pytest.importorskip('tensorflow')  # tfds.testing needs TensorFlow

from tensorflow_datasets import testing as tfds_testing  # noqa: E402

from jaxlm.data.formats import aflw19 as aflw19_format  # noqa: E402
from jaxlm.data.formats import fake  # noqa: E402
from jaxlm.data.tfds import aflw19, cofw, mafl, merl_rav, w300, wflw  # noqa: E402


class _FakeData(tfds_testing.DatasetBuilderTestCase):
  SKIP_CHECKSUMS = True
  SKIP_TF1_GRAPH_MODE = True

  @classmethod
  def write(cls, root):
    raise NotImplementedError

  @classmethod
  def setUpClass(cls):
    cls._tmp = tempfile.TemporaryDirectory()
    cls.write(cls._tmp.name)
    cls.EXAMPLE_DIR = cls._tmp.name
    super().setUpClass()

  @classmethod
  def tearDownClass(cls):
    super().tearDownClass()
    cls._tmp.cleanup()

  def _assertAsDataset(self, builder):  # pylint: disable=invalid-name
    features = builder.info.features
    digests = {}
    for split, expected in self.SPLITS.items():
      source = builder.as_data_source(split=split)
      self.assertLen(source, expected)
      digests[split] = set()
      for i in range(len(source)):
        ex = source[i]
        for name, info in features.get_tensor_info().items():
          value = np.asarray(ex[name])
          self.assertEqual(value.shape, info.shape, name)
        image = cv2.imdecode(np.frombuffer(ex['image'], np.uint8),
                             cv2.IMREAD_COLOR)
        self.assertEqual(image.shape, (448, 448, 3))
        digests[split].add(hashlib.sha1(ex['image']).hexdigest())
    for (a, da), (b, db) in itertools.combinations(digests.items(), 2):
      if a not in self.OVERLAPPING_SPLITS and b not in self.OVERLAPPING_SPLITS:
        self.assertFalse(da & db, f'splits {a} and {b} share examples')


class WflwTest(_FakeData):
  DATASET_CLASS = wflw.Builder
  # The fake attribute flags are seeded: the subset counts are fixed.
  SPLITS = {'train': 4, 'test': 3, 'test_pose': 2, 'test_expression': 1,
            'test_illumination': 2, 'test_makeup': 1, 'test_occlusion': 2,
            'test_blur': 1}
  OVERLAPPING_SPLITS = [f'test_{a}' for a in
                        ('pose', 'expression', 'illumination', 'makeup',
                         'occlusion', 'blur')]

  @classmethod
  def write(cls, root):
    fake.write_wflw(root, dict(train=4, test=3))


class W300Test(_FakeData):
  DATASET_CLASS = w300.Builder
  BUILDER_CONFIG_NAMES_TO_TEST = ['default']
  SPLITS = {'train': 3, 'test_common': 2, 'test_challenging': 1,
            'test_full': 3}
  OVERLAPPING_SPLITS = ['test_full']

  @classmethod
  def write(cls, root):
    fake.write_300w(root, n=1)


class W300PrivateTest(W300Test):
  BUILDER_CONFIG_NAMES_TO_TEST = ['private']
  SPLITS = {'test_indoor': 1, 'test_outdoor': 1, 'test': 2}
  OVERLAPPING_SPLITS = ['test']


class W300MaskedTest(W300Test):
  BUILDER_CONFIG_NAMES_TO_TEST = ['masked']
  SPLITS = {'test_common': 2, 'test_challenging': 1, 'test_full': 3}


class CofwTest(_FakeData):
  DATASET_CLASS = cofw.Builder
  BUILDER_CONFIG_NAMES_TO_TEST = ['cofw29']
  SPLITS = {'train': 3, 'test': 2}

  @classmethod
  def write(cls, root):
    fake.write_cofw(root, dict(train=3, test=2))


class Cofw68Test(CofwTest):
  BUILDER_CONFIG_NAMES_TO_TEST = ['cofw68']
  SPLITS = {'test': 2}


class MerlRavTest(_FakeData):
  DATASET_CLASS = merl_rav.Builder
  SPLITS = {'train': 5, 'test': 5, 'test_frontal': 1,
            'test_half_profile': 2, 'test_profile': 2}
  OVERLAPPING_SPLITS = ['test']

  @classmethod
  def write(cls, root):
    fake.write_merlrav(root, n=1)


class Aflw19Test(_FakeData):
  DATASET_CLASS = aflw19.Builder
  OVERLAPPING_SPLITS = ['test_frontal']

  @classmethod
  def write(cls, root):
    fake.write_aflw19(root, n=6)
    with mock.patch.object(aflw19_format, 'NUM_TRAIN', 4):
      frontal = len(list(aflw19_format.read_aflw19(root, 'test_frontal')))
    cls.SPLITS = {'train': 4, 'test': 2, 'test_frontal': frontal}

  def setUp(self):
    super().setUp()
    patcher = mock.patch.object(aflw19_format, 'NUM_TRAIN', 4)
    patcher.start()
    self.addCleanup(patcher.stop)


class MaflTest(_FakeData):
  DATASET_CLASS = mafl.Builder
  SPLITS = {'train': 3, 'test': 2}

  @classmethod
  def write(cls, root):
    fake.write_mafl(root, dict(train=3, test=2))


del _FakeData  # not a test case itself
