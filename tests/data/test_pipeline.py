import numpy as np
import pytest

from jaxlm.data import pipeline, sources
from jaxlm.data.synthetic import SyntheticFaces
from jaxlm.errors import JaxlmError


def _specs():
  return [sources.DatasetSpec('a', 'syn29', SyntheticFaces('syn29', 40, 1, 64)),
          sources.DatasetSpec('b', 'syn68', SyntheticFaces('syn68', 40, 2, 64))]


def _data(**kw):
  args = dict(num_anchors=6, image_size=64, batch_size=4, seed=0)
  args.update(kw)
  return pipeline.train_dataset(_specs(), {'a': 0, 'b': 29}, **args)


def test_batches_have_masked_anchors_from_each_layout():
  batch = next(iter(_data()))
  assert batch['image'].shape == (4, 64, 64, 3)
  assert batch['point_index'].shape == (4, 6)
  assert batch['target'].shape == (4, 6, 2)
  for idx in batch['point_index']:
    assert len(set(idx)) == 6  # no anchor twice
    assert np.all(idx < 29) or np.all(idx >= 29)  # one dataset per sample
  assert np.all((batch['target'] > -0.2) & (batch['target'] < 1.2))


def test_targets_are_the_chosen_points():
  specs = _specs()
  it = iter(_data(batch_size=1))
  batch = next(it)
  idx = batch['point_index'][0]
  src = specs[0].source if idx[0] < 29 else specs[1].source
  local = idx - (0 if idx[0] < 29 else 29)
  # Find the face: some item of the source has exactly these landmarks.
  hits = [i for i in range(len(src)) if np.allclose(
      src.landmarks(i)[local] / 64, batch['target'][0], atol=1e-5)]
  assert len(hits) == 1


def test_deterministic_and_resumable():
  a = iter(_data())
  first = [next(a)['point_index'] for _ in range(3)]
  state = a.get_state()
  fourth = next(a)['point_index']
  b = iter(_data())
  for want in first:
    np.testing.assert_array_equal(next(b)['point_index'], want)
  c = iter(_data())
  c.set_state(state)
  np.testing.assert_array_equal(next(c)['point_index'], fourth)


def test_eval_batches_pad_the_last_batch():
  src = SyntheticFaces('syn29', 5, 1, 64)
  batches = list(pipeline.eval_batches(src, 4))
  assert len(batches) == 2
  assert batches[1]['valid'].tolist() == [True, False, False, False]
  assert batches[1]['image'].shape == (4, 64, 64, 3)


def test_too_many_anchors_is_an_error_unless_the_family_pads():
  with pytest.raises(JaxlmError, match='num_anchors'):
    _data(num_anchors=30)


@pytest.mark.parametrize('mask_invisible', [False, True])
def test_layouts_with_fewer_points_than_num_anchors_are_padded(
    mask_invisible):
  from jaxlm.data.pipeline import _TrainExample
  ex = _TrainExample(offset=10, num_points=5, num_anchors=8, image_size=10,
                     mask_invisible=mask_invisible)
  visible = np.array([True, True, False, True, True])
  sample = dict(image=np.zeros((10, 10, 3), np.uint8),
                landmarks=np.arange(10, dtype=np.float32).reshape(5, 2),
                visible=visible, index=0)
  out = ex(sample, np.random.default_rng(0))
  idx = out['point_index']
  assert idx.shape == (8,)
  assert sorted(idx[:5].tolist()) == list(range(10, 15))
  # the pads repeat the kept points in order, with weight 0
  np.testing.assert_array_equal(idx[5:], idx[:3])
  want = visible[idx[:5] - 10] if mask_invisible else np.ones(5)
  np.testing.assert_array_equal(out['weight'], np.r_[want, 0, 0, 0])
  np.testing.assert_allclose(out['target'][:5] * 10,
                             sample['landmarks'][idx[:5] - 10])
