"""Two real JAX processes on this machine (gloo CPU collectives, 4 simulated
devices each) train the demo config through launch/local.sh."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

TINY = ['--config.model.variant=Ti/16:depth=1', '--config.model.decoder_layers=2',
        '--config.model.decoder_mlp=64', '--config.model.head_hidden=32',
        '--config.data.image_size=64', '--config.data.num_anchors=8',
        '--config.train.batch_size=8', '--config.train.steps=4',
        '--config.train.log_every=1', '--config.train.checkpoint_every=2',
        '--config.optim.warmup_steps=0', '--config.data.mean_shape_samples=8']


@pytest.mark.slow
@pytest.mark.integration
def test_two_processes_agree_and_write_one_checkpoint(tmp_path):
  work = tmp_path / 'run'
  env = dict(os.environ, SKIP_INSTALL='1', NUM_PROCESSES='2',
             DEVICES_PER_PROCESS='4', JAXLM=str(Path(sys.executable).parent /
                                                'jaxlm'))
  env.pop('XLA_FLAGS', None)
  proc = subprocess.run(
      ['bash', 'launch/local.sh', 'configs/tufa_demo.py', str(work),
       '--no-progress', *TINY], cwd=ROOT, env=env, capture_output=True,
      text=True, timeout=600)
  logs = [(work / 'logs' / f'process_{i}.log').read_text() for i in (0, 1)]
  assert proc.returncode == 0, proc.stderr + logs[0][-2000:] + logs[1][-2000:]
  finals = []
  for log in logs:
    assert "mesh {'data': 8, 'fsdp': 1, 'tensor': 1} over 8 devices " \
           "(2 processes)" in log
    m = re.search(r'trained at step 4: (.*)', log)
    assert m, log[-2000:]
    finals.append(re.search(r'loss ([0-9.]+)', m.group(1)).group(1))
  assert finals[0] == finals[1]
  assert sorted(p.name for p in (work / 'checkpoints').iterdir()) == ['2', '4']
  assert len((work / 'metrics.jsonl').read_text().splitlines()) == 4


def test_dry_run_prints_one_command_per_process(tmp_path):
  env = dict(os.environ, DRY_RUN='1', NUM_PROCESSES='2',
             DEVICES_PER_PROCESS='4', COORDINATOR_PORT='12345')
  out = subprocess.run(['bash', 'launch/local.sh', 'configs/tufa_demo.py',
                        str(tmp_path / 'w'), '--config.train.steps=3'],
                       cwd=ROOT, env=env, capture_output=True, text=True,
                       check=True).stdout
  lines = [l for l in out.splitlines() if 'jaxlm train' in l]
  assert len(lines) == 2
  for i, l in enumerate(lines):
    assert f'JAXLM_PROCESS_ID={i}' in l and 'JAXLM_NUM_PROCESSES=2' in l
    assert 'JAXLM_COORDINATOR=127.0.0.1:12345' in l
    assert 'xla_force_host_platform_device_count=4' in l
    assert l.endswith(f'process_{i}.log 2>&1 &')
  assert not (tmp_path / 'w').exists()
