"""Every failure a user can cause ends in one `error:` line (exit 2), never a
traceback (issue 12): config arguments and overrides, builds, conversions,
predictions, renders, evaluations. Each case raised or printed a traceback
(or silently did the wrong thing) before."""

from pathlib import Path

import numpy as np
import pytest

from jaxlm.cli import main
from jaxlm.data.formats import fake
from jaxlm.data.synthetic import SyntheticFaces
from jaxlm.plots import save_rgb

RUN = str(Path(__file__).parent / 'fixtures' / 'runs_v0' / 'trained')


def error_of(capsys, *argv):
  code = main(list(argv) + ['--no-progress'])
  err = capsys.readouterr().err.strip().splitlines()
  assert code == 2, err
  assert err and err[-1].startswith('error: '), err
  assert not any('Traceback' in line for line in err), err
  return err[-1]


@pytest.mark.parametrize('argv, says', [
    (['--config', 'configs/tufa_fewshot.py:nosuch'], 'accepted: wflw'),
    (['--config', 'configs/slpt_demo.py:bogus'], 'accepted: slpt, dslpt'),
    (['--config', 'configs/tufa_demo.py:wflw'], 'takes none'),
    (['--config', 'configs/tufa_demo.py', '--config.optim.decay_at=abc'],
     'expected a sequence of floats'),
    (['--config', 'configs/tufa_demo.py', '--config.data.image_size=50'],
     'not a multiple of patch 16'),
    (['--config', 'configs/tufa_demo.py', '--config.model.variant=Q/99'],
     "unknown ViT variant 'Q/99'"),
])
def test_config_errors(argv, says, tmp_path, capsys):
  assert says in error_of(capsys, 'train', '--workdir', str(tmp_path / 'w'),
                          *argv)
  assert not (tmp_path / 'w' / 'config.json').exists()


@pytest.fixture
def face(tmp_path):
  path = tmp_path / 'face.png'
  save_rgb(path, SyntheticFaces('syn29', 1, seed=7, image_size=64)[0]['image'])
  return str(path)


def test_predict_errors(face, tmp_path, capsys):
  p = ['predict', '--checkpoint', RUN, '--image', face]
  words = tmp_path / 'words.npy'
  np.save(words, np.array([['a', 'b']] * 3))
  assert 'holds <U1 values' in error_of(capsys, *p, '--layout', str(words),
                                        '--crop', 'none')
  for box, says in (('0,0,inf,inf', 'must be finite'),
                    ('10,10,10.5,10.5', 'smaller than one pixel'),
                    ('-1e9,-1e9,1e9,1e9', 'beyond the 64x64 image')):
    assert says in error_of(capsys, *p, f'--box={box}')
  for out in ('x.txtx', 'overlay'):
    assert 'unknown image format' in error_of(
        capsys, *p, '--crop', 'none', '--out', str(tmp_path / out))
  # missing folders are created, not an error
  assert main(p + ['--crop', 'none', '--out', str(tmp_path / 'a/b/o.png'),
                   '--json', str(tmp_path / 'c/d/o.json')]) == 0
  assert (tmp_path / 'a/b/o.png').exists() and (tmp_path / 'c/d/o.json').exists()


def test_synth_and_eval_errors(tmp_path, capsys):
  assert 'not a synthetic layout' in error_of(
      capsys, 'synth', '--layout', 'wflw98', '--out', str(tmp_path / 'x.png'))
  assert 'has no faces to evaluate' in error_of(
      capsys, 'eval', '--checkpoint', RUN, '--out', str(tmp_path / 'e'),
      '--config.data.eval.syn29.size=0')


def test_convert_errors(tmp_path, capsys):
  empty = tmp_path / 'empty.pth'
  empty.write_bytes(b'')
  dst = str(tmp_path / 'dst')
  assert 'empty.pth' in error_of(capsys, 'convert', 'dino', '--src',
                                 str(empty), '--dst', dst)
  assert "unknown ViT variant 'nonsense'" in error_of(
      capsys, 'convert', 'dino', '--src', str(empty), '--dst', dst,
      '--variant', 'nonsense')
  blocker = tmp_path / 'file'
  blocker.write_text('x')
  assert 'not an empty folder' in error_of(
      capsys, 'convert', 'dino', '--src', str(empty), '--dst', str(blocker))


def test_converting_nonfinite_weights_needs_a_flag(tmp_path, capsys):
  torch = pytest.importorskip('torch')
  transformers = pytest.importorskip('transformers')
  m = transformers.ViTModel(transformers.ViTConfig(
      hidden_size=192, num_hidden_layers=1, num_attention_heads=3,
      intermediate_size=768, patch_size=16, image_size=224, qkv_bias=True,
      layer_norm_eps=1e-6), add_pooling_layer=False)
  sd = m.state_dict()
  key = [k for k in sd if k.endswith('.bias')][3]
  sd[key][3] = float('nan')
  from safetensors.torch import save_file
  src = tmp_path / 'nan.safetensors'
  save_file({k: v.contiguous() for k, v in sd.items()}, str(src))
  del torch
  msg = error_of(capsys, 'convert', 'dino', '--src', str(src), '--dst',
                 str(tmp_path / 'a'))
  assert key in msg and 'NaN' in msg
  assert not (tmp_path / 'a').exists()
  assert main(['convert', 'dino', '--src', str(src), '--dst',
               str(tmp_path / 'b'), '--allow_nonfinite']) == 0


def _build(tmp_path, name, *extra):
  return ['build', name, '--manual_dir', str(tmp_path / 'src'), '--data_dir',
          str(tmp_path / 'tfds'), *extra]


def _wflw_lines(tmp_path):
  return (tmp_path / 'src' / 'WFLW_annotations' /
          'list_98pt_rect_attr_train_test' / 'list_98pt_rect_attr_train.txt')


def test_build_rejects_nonfinite_and_far_landmarks_and_empty_images(
    tmp_path, capsys):
  fake.write_wflw(tmp_path / 'src', dict(train=3, test=2))
  anno = _wflw_lines(tmp_path)
  original = anno.read_text()
  lines = original.splitlines()
  fields = lines[0].split()
  fields[0] = 'nan'
  lines[0] = ' '.join(fields)
  fields = lines[1].split()
  fields[2] = '1e6'
  lines[1] = ' '.join(fields)
  anno.write_text('\n'.join(lines) + '\n')
  msg = error_of(capsys, *_build(tmp_path, 'wflw'))
  assert 'list_98pt_rect_attr_train.txt:1' in msg and 'nan' in msg
  assert main(_build(tmp_path, 'wflw', '--skip_bad')) == 0
  import json
  report = json.loads(next((tmp_path / 'tfds').rglob(
      'build_report.json')).read_text())
  assert report['splits']['train'] == 1
  assert any(':2' in s and 'outside' in s for s in report['skipped']['train'])
  # a zero-byte image is a bad face too (skippable), not a crash
  anno.write_text(original)
  image = next((tmp_path / 'src' / 'WFLW_images').rglob('*.jpg'))
  image.write_bytes(b'')
  assert 'empty image file' in error_of(capsys, *_build(tmp_path, 'wflw',
                                                        '--overwrite'))


def test_build_overwrite_with_a_bad_source_keeps_the_good_dataset(
    tmp_path, capsys):
  fake.write_wflw(tmp_path / 'src', dict(train=2, test=2))
  assert main(_build(tmp_path, 'wflw')) == 0
  built = {p: p.read_bytes() for p in (tmp_path / 'tfds').rglob('*')
           if p.is_file()}
  _wflw_lines(tmp_path).write_text('')  # the new source is broken
  msg = error_of(capsys, *_build(tmp_path, 'wflw', '--overwrite'))
  assert 'nothing was written' in msg
  after = {p: p.read_bytes() for p in (tmp_path / 'tfds').rglob('*')
           if p.is_file()}
  assert after == built  # every file of the good build, byte for byte
  assert not [p for p in (tmp_path / 'tfds').iterdir()
              if p.name.startswith('.')]
