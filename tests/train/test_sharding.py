"""Sharded training: one loss curve whatever the mesh (8 simulated devices)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from jaxlm.errors import JaxlmError

ROOT = Path(__file__).resolve().parents[2]

_SCRIPT = r'''
import json, sys
sys.path.insert(0, {tests!r})
import jax
from conftest import tiny_config
from jaxlm.train.loop import train
from jaxlm.train import sharding
assert len(jax.devices()) == 8, jax.devices()
out, nme = {{}}, {{}}
for d, f, t in {meshes!r}:
  c = tiny_config(steps=3)
  c.train.batch_size = 8
  c.train.checkpoint_every = 100
  c.mesh.data, c.mesh.fsdp, c.mesh.tensor = d, f, t
  work = {work!r} + f'/m{{d}}{{f}}{{t}}'
  train(c, work, progress=False)
  lines = open(work + '/metrics.jsonl').read().splitlines()
  out[f'{{d}}x{{f}}x{{t}}'] = [json.loads(l)['loss'] for l in lines]
  # the batch NME, reduced across devices by shard_map + psum
  nme[f'{{d}}x{{f}}x{{t}}'] = [json.loads(l)['train_nme'] for l in lines]
# An FSDP mesh really shards the parameters.
mesh = sharding.make_mesh(dict(data=2, fsdp=4, tensor=1))
spec = sharding.spec_for('params/encoder/blocks_0/qkv/kernel', (192, 576),
                         mesh)
out['qkv_spec'] = str(spec)
out['nme'] = nme
print('RESULT' + json.dumps(out))
'''


@pytest.mark.slow
def test_same_loss_curve_on_every_mesh(tmp_path):
  # 2x2x2 splits every axis at once (data, fsdp and tensor); the 2x4x1 and
  # 4x1x2 meshes it replaces added nothing it does not check (CI time)
  meshes = [(1, 1, 1), (2, 2, 2)]
  code = _SCRIPT.format(tests=str(ROOT / 'tests'), meshes=meshes,
                        work=str(tmp_path))
  env = dict(os.environ, XLA_FLAGS='--xla_force_host_platform_device_count=8',
             JAX_PLATFORMS='cpu')
  proc = subprocess.run([sys.executable, '-c', code], env=env, cwd=ROOT,
                        capture_output=True, text=True, timeout=900)
  assert proc.returncode == 0, proc.stderr[-3000:]
  line = [l for l in proc.stdout.splitlines() if l.startswith('RESULT')][-1]
  out = json.loads(line[len('RESULT'):])
  assert 'fsdp' in out.pop('qkv_spec')
  nme = out.pop('nme')
  for name, c in nme.items():
    np.testing.assert_allclose(c, nme['1x1x1'], rtol=1e-5, err_msg=name)
  assert all(0 < v < 2 for v in nme['1x1x1'])
  curves = list(out.values())
  assert all(len(c) == 3 for c in curves)
  for name, c in out.items():
    for a, b in zip(c, out['1x1x1']):
      assert abs(a - b) <= 1e-5 * max(1.0, abs(b)), (name, c, out['1x1x1'])


def test_mesh_config_errors():
  from jaxlm.train import sharding
  with pytest.raises(JaxlmError, match='needs 8 devices'):
    sharding.make_mesh(dict(data=8, fsdp=1, tensor=1), devices=['cpu'])
  with pytest.raises(JaxlmError, match='at most one axis may be -1'):
    sharding.make_mesh(dict(data=-1, fsdp=-1, tensor=1))


def test_batch_nme_by_hand():
  """shard_map'd batch NME on a one-device mesh vs the formula."""
  from jaxlm.train import sharding
  from jaxlm.train.batch_metrics import make_batch_nme
  rng = np.random.default_rng(0)
  target = rng.uniform(0, 1, (4, 6, 2)).astype(np.float32)
  pred = target + rng.normal(0, 0.05, target.shape).astype(np.float32)
  weight = np.ones((4, 6), np.float32)
  weight[1, 2:] = 0
  mesh = sharding.make_mesh(None)
  got = float(make_batch_nme(mesh, eyes=(0, 1))(pred, target, weight))
  err = np.linalg.norm(pred - target, axis=-1)
  per = (err * weight).sum(-1) / weight.sum(-1)
  iod = np.linalg.norm(target[:, 0] - target[:, 1], axis=-1)
  np.testing.assert_allclose(got, (per / iod).mean(), rtol=1e-4)
  got = float(make_batch_nme(mesh)(pred, target, weight))
  boxes = [target[i][weight[i] > 0] for i in range(4)]
  size = [np.sqrt(np.prod(b.max(0) - b.min(0))) for b in boxes]
  np.testing.assert_allclose(got, (per / np.array(size)).mean(), rtol=1e-4)
