"""Run folders: the best step by `train.best_metric` is kept besides the
newest ones, across a resume, and `<run>/best` names it."""

import json

import jax.numpy as jnp
import pytest

from jaxlm import checkpoints
from jaxlm.errors import JaxlmError


def _save(ckpt, step, metrics):
  ckpt.save(step, {'w': jnp.full((2,), float(step))}, {}, metrics)
  ckpt.wait()


def _run(path, best_metric):
  checkpoints.write_run_metadata(path, json.dumps(
      {'train': {'best_metric': best_metric}}), [('a', 2)])


@pytest.mark.parametrize('metric, values, best', [
    ('eval/a/nme', [3.0, 1.0, None, 4.0, 5.0], 2),  # lower is better
    ('eval/a/auc', [0.3, 0.9, None, 0.2, 0.1], 2),  # higher is better
])
def test_the_best_step_survives_keeping_the_newest(tmp_path, metric, values,
                                                   best):
  _run(tmp_path, metric)
  ckpt = checkpoints.Checkpointer(tmp_path, max_to_keep=2, best_metric=metric)
  for step, v in enumerate(values, 1):
    _save(ckpt, step, None if v is None else {metric: v, 'eval/a/fr': 0.5})
  assert ckpt.all_steps() == [5, 4, best] and ckpt.best_step() == best
  ckpt.close()
  assert checkpoints.step_metrics(tmp_path / 'checkpoints' / '2')[metric] \
      == values[1]
  run, step_dir = checkpoints.find_run(tmp_path / checkpoints.BEST)
  assert run == tmp_path and step_dir == tmp_path / 'checkpoints' / str(best)
  assert checkpoints.eval_dir(tmp_path / 'best') == tmp_path / f'eval_{best}'

  # a resumed run reads the saved metrics: a better step replaces the best
  # one, a worse one does not
  ckpt = checkpoints.Checkpointer(tmp_path, max_to_keep=2, best_metric=metric)
  _save(ckpt, 6, {metric: values[0]})  # worse than the best
  assert ckpt.all_steps() == [6, 5, best]
  better = values[1] - 0.5 if metric.endswith('nme') else values[1] + 0.05
  _save(ckpt, 7, {metric: better})
  _save(ckpt, 8, None)
  _save(ckpt, 9, None)
  assert ckpt.all_steps() == [9, 8, 7] and ckpt.best_step() == 7
  ckpt.close()


def test_without_best_metric_only_the_newest_are_kept(tmp_path):
  _run(tmp_path, '')
  ckpt = checkpoints.Checkpointer(tmp_path, max_to_keep=2)
  for step in (1, 2, 3):
    _save(ckpt, step, {'eval/a/nme': 1.0 / step})
  assert ckpt.all_steps() == [3, 2] and ckpt.best_step() is None
  ckpt.close()
  assert checkpoints.step_metrics(tmp_path / 'checkpoints' / '3') is None
  with pytest.raises(JaxlmError, match='keeps no best checkpoint'):
    checkpoints.find_run(tmp_path / 'best')


SAVE_ON_8_DEVICES = '''
import sys
import jax, jax.numpy as jnp
from jax.sharding import NamedSharding, PartitionSpec as P
from jaxlm import checkpoints
mesh = jax.make_mesh((8,), ('data',))
w = jax.device_put(jnp.arange(16.).reshape(8, 2),
                   NamedSharding(mesh, P('data')))
ckpt = checkpoints.Checkpointer(sys.argv[1], 1)
ckpt.save(3, {'params': {'w': w}, 'constants': {'c': jnp.ones(2)},
              'ema': None, 'batch_stats': None})
ckpt.wait()
ckpt.close()
checkpoints.write_run_metadata(sys.argv[1], '{}', [('a', 2)])
'''


def test_a_step_saved_on_another_topology_loads(tmp_path):
  """A run trained on 8 devices (a multi-host job) read on 1 (`jaxlm
  eval` on a workstation). Before: orbax's 'Topology mismatch detected'."""
  import os
  import subprocess
  import sys
  import numpy as np
  env = dict(os.environ,
             XLA_FLAGS='--xla_force_host_platform_device_count=8')
  subprocess.run([sys.executable, '-c', SAVE_ON_8_DEVICES, str(tmp_path)],
                 env=env, check=True, capture_output=True)
  run = checkpoints.load_run(tmp_path / 'checkpoints' / '3')
  np.testing.assert_array_equal(run.variables['params']['w'],
                                np.arange(16.).reshape(8, 2))
  assert run.step == 3 and set(run.variables) == {'params', 'constants'}
