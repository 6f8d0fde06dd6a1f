"""Dry runs of the TPU-pod and SLURM launchers print the right commands;
a run of the TPU-pod launcher against a fake `gcloud` passes `jaxlm train`
exactly its arguments."""

import os
import re
import shlex
import subprocess
from pathlib import Path

import pytest

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


# Records its arguments (one per line) in $CALLS; runs the remote training
# command of `ssh --command=...` in a fake home holding a fake jaxlm.
FAKE_GCLOUD = r'''#!/usr/bin/env bash
printf '%s\n' "$@" > "$CALLS/gcloud-$(ls "$CALLS" | wc -l)"
for a in "$@"; do
  case "$a" in --command=*jaxlm\ train*) HOME="$FAKE_HOME" bash -c "${a#--command=}";; esac
done
'''
FAKE_JAXLM = '#!/usr/bin/env bash\nprintf "%s\\n" "$@" > "$CALLS/jaxlm"\n'
FAKE_GIT = '#!/usr/bin/env bash\n: > "${@: -2:1}"\n'  # touches -o FILE


@pytest.mark.parametrize('overrides', [[], ['--config.data.data_dir=gs://b/t',
                                            '--config.train.steps=5']])
def test_tpu_pod_passes_jaxlm_exactly_its_arguments(tmp_path, overrides):
  # Before: with no overrides jaxlm got one more, empty argument ('').
  calls, home, bin_ = tmp_path / 'calls', tmp_path / 'home', tmp_path / 'bin'
  for d in (calls, home / 'jaxlm' / '.venv' / 'bin', home / 'jaxlm' / 'logs',
            bin_):
    d.mkdir(parents=True)
  for path, text in ((bin_ / 'gcloud', FAKE_GCLOUD),
                     (bin_ / 'git', FAKE_GIT),
                     (home / 'jaxlm' / '.venv' / 'bin' / 'jaxlm', FAKE_JAXLM)):
    path.write_text(text)
    path.chmod(0o755)
  env = dict(os.environ, PATH=f'{bin_}:{os.environ["PATH"]}', CALLS=str(calls),
             FAKE_HOME=str(home))
  env.pop('DRY_RUN', None)
  subprocess.run(['bash', 'launch/tpu_pod.sh', 'pod', 'zone', 'configs/x.py',
                  'gs://b/run', *overrides], cwd=ROOT, env=env, check=True)
  argv = (calls / 'jaxlm').read_text().splitlines()
  assert argv == ['train', '--no-progress', '--config', 'configs/x.py',
                  '--workdir', 'gs://b/run', *overrides]
  assert len(list(calls.glob('gcloud-*'))) == 3  # scp, setup, train


def test_slurm_log_needs_no_folder_at_submission():
  # Before: #SBATCH --output=logs/... and logs/ was made by the job itself,
  # so sbatch could not open the log and the job failed without one.
  text = (ROOT / 'launch' / 'slurm.sbatch').read_text()
  (output,) = re.findall(r'^#SBATCH --output=(\S+)', text, re.M)
  assert '/' not in output


def test_slurm_dry_run():
  (cmd,) = _dry('bash', 'launch/slurm.sbatch', 'configs/tufa_vits16_multi.py',
                '/scratch/run', '--config.train.batch_size=128')
  assert cmd[:3] == ['srun', '--kill-on-bad-exit=1',
                     '--output=logs/%x-%j-%t.out']
  assert cmd[3:5] == ['.venv/bin/jaxlm', 'train']
  assert cmd[5:] == ['--no-progress', '--config',
                     'configs/tufa_vits16_multi.py', '--workdir',
                     '/scratch/run', '--config.train.batch_size=128']
