"""Dry runs of the TPU-pod and SLURM launchers print the right commands."""

import os
import shlex
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _dry(*cmd):
  out = subprocess.run(list(cmd), cwd=ROOT, env=dict(os.environ, DRY_RUN='1'),
                       capture_output=True, text=True, check=True).stdout
  return [shlex.split(l[2:]) for l in out.splitlines() if l.startswith('+ ')]


def test_tpu_pod_dry_run():
  cmds = _dry('bash', 'launch/tpu_pod.sh', 'pod', 'us-central2-b',
              'configs/tufa_vits16_multi.py', 'gs://b/run',
              '--config.data.data_dir=gs://b/tfds')
  assert cmds[0][:2] == ['git', 'archive']
  scp, setup, train = cmds[1], cmds[2], cmds[3]
  assert scp[:5] == ['gcloud', 'compute', 'tpus', 'tpu-vm', 'scp']
  for c in (scp, setup, train):
    assert '--worker=all' in c and '--zone=us-central2-b' in c
  remote = [a for a in train if a.startswith('--command=')][0]
  assert '.venv/bin/jaxlm train' in remote
  assert '--workdir gs://b/run --config.data.data_dir=gs://b/tfds' in remote
  assert 'logs/$(hostname).log' in remote
  assert 'jax[tpu]' in [a for a in setup if a.startswith('--command=')][0]


def test_slurm_dry_run():
  (cmd,) = _dry('bash', 'launch/slurm.sbatch', 'configs/tufa_vits16_multi.py',
                '/scratch/run', '--config.train.batch_size=128')
  assert cmd[:2] == ['srun', '--kill-on-bad-exit=1']
  assert cmd[2:4] == ['.venv/bin/jaxlm', 'train']
  assert cmd[4:] == ['--no-progress', '--config',
                     'configs/tufa_vits16_multi.py', '--workdir',
                     '/scratch/run', '--config.train.batch_size=128']
