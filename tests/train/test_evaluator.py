"""Evaluation during training (`train.eval_every`): the numbers `jaxlm eval`
gives for the same checkpoints, in metrics.jsonl and TensorBoard (with the
overlay grid), and the best checkpoint kept besides the newest."""

import json
import struct

import cv2
import numpy as np
import pytest
from tensorboardX.proto import event_pb2

from jaxlm import checkpoints, evaluate
from jaxlm.errors import JaxlmError
from jaxlm.train.loop import train

pytestmark = pytest.mark.slow

METRICS = ('nme', 'fr', 'auc')


def _tiny(tiny, steps):
  """The docs test's tiny TUFA, one training and one eval dataset."""
  c = tiny(steps=steps, image_size=32)
  c.model.variant = 'Ti/16:depth=1:width=32:num_heads=2:mlp_dim=64'
  c.model.decoder_layers, c.model.decoder_heads = 1, 2
  c.model.decoder_mlp, c.model.head_hidden = 32, 16
  c.data.train = {'syn29': c.data.train.syn29}
  c.data.eval = {'syn29': c.data.eval.syn29}
  return c


def _events(run):
  """(scalars {(tag, step): value}, images {(tag, step): RGB array}) of
  the run's TensorBoard event files, read as TFRecords of Event protos."""
  scalars, images = {}, {}
  for path in sorted((run / 'tb').glob('events.out.tfevents.*')):
    data, at = path.read_bytes(), 0
    while at < len(data):
      (length,) = struct.unpack('<Q', data[at:at + 8])
      event = event_pb2.Event.FromString(data[at + 12:at + 12 + length])
      at += 12 + length + 4  # length, its CRC, record, its CRC
      for v in event.summary.value:
        if v.HasField('image'):
          png = np.frombuffer(v.image.encoded_image_string, np.uint8)
          images[v.tag, event.step] = cv2.imdecode(png, cv2.IMREAD_COLOR)
        elif v.HasField('simple_value'):
          scalars[v.tag, event.step] = v.simple_value
  return scalars, images


def test_eval_every_logs_what_jaxlm_eval_gives_and_keeps_the_best(tmp_path,
                                                                  tiny):
  c = _tiny(tiny, steps=4)
  c.train.eval_every = 2
  c.train.checkpoint_every = 100  # saved: the evaluated steps (best_metric)
  c.train.keep_checkpoints = 1
  c.train.best_metric = 'eval/syn29/nme'
  c.train.ema_decay = 0.5  # evaluated with the EMA, as jaxlm eval does
  c.eval.fr_alpha = 0.7  # this untrained model's NMEs straddle it
  out = train(c, tmp_path, progress=False)

  lines = [json.loads(l) for l in
           (tmp_path / 'metrics.jsonl').read_text().splitlines()]
  logged = {l['step']: l for l in lines if 'eval/syn29/nme' in l}
  assert sorted(logged) == [2, 4]
  assert out['eval/syn29/nme'] == logged[4]['eval/syn29/nme']
  assert 0 < logged[4]['eval/syn29/fr'] < 1, 'FR and AUC would say nothing'

  scalars, images = _events(tmp_path)
  for step, line in logged.items():
    for m in METRICS:
      np.testing.assert_allclose(scalars[f'eval/syn29/{m}', step],
                                 line[f'eval/syn29/{m}'], rtol=1e-6)
    # eval.overlays faces enlarged to 256 px, on a 4-wide grid
    assert images['eval/syn29/overlays', step].shape == (256, 4 * 256, 3)
    assert images['eval/syn29/overlays', step][:, :512].std() > 10

  # the best step survives keeping only the newest one (tests/
  # test_checkpoints.py keeps an older best for sure); RUN/best names it
  best = min(logged, key=lambda s: logged[s]['eval/syn29/nme'])
  assert checkpoints.Checkpointer(tmp_path).all_steps() == sorted(
      {best, 4}, reverse=True)

  # jaxlm eval of that checkpoint gives the same numbers
  res, pred = evaluate.evaluate_checkpoint(tmp_path / 'best',
                                           tmp_path / 'eval', progress=False)
  assert pred.step == best
  for m in METRICS:
    np.testing.assert_allclose(res['syn29'][m], logged[best][f'eval/syn29/{m}'],
                               rtol=1e-5, err_msg=m)


@pytest.mark.parametrize('key, value, says', [
    ('best_metric', 'eval/nope/nme', "train.best_metric='eval/nope/nme'"),
    ('best_metric', 'eval/syn29/loss', 'eval/<dataset>/<nme|fr|auc>'),
    ('eval_every', -1, 'train.eval_every: -1 is negative'),
    ('eval_every', 1, 'data.eval has no dataset'),
])
def test_bad_eval_settings_name_the_key(tmp_path, tiny, key, value, says):
  c = _tiny(tiny, steps=2)
  c.train.eval_every = 2
  c.train[key] = value
  if says.startswith('data.eval'):
    c.data.eval = {}
  with pytest.raises(JaxlmError) as e:
    train(c, tmp_path, progress=False)
  assert says in str(e.value)


def test_best_metric_needs_eval_every(tmp_path, tiny):
  c = _tiny(tiny, steps=2)
  c.train.best_metric = 'eval/syn29/auc'
  with pytest.raises(JaxlmError, match='needs train.eval_every > 0'):
    train(c, tmp_path, progress=False)
