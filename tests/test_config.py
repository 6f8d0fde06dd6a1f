import pytest

from jaxlm import config as config_lib
from jaxlm.errors import JaxlmError
from conftest import ROOT

DEMO = str(ROOT / 'configs' / 'tufa_demo.py')
MULTI = str(ROOT / 'configs' / 'tufa_vits16_multi.py')


@pytest.mark.parametrize('name', ['tufa_demo', 'tufa_vits16_multi',
                                  'tufa_vits8_multi'])
def test_configs_load_and_validate(name):
  c = config_lib.validate(config_lib.load_config(
      str(ROOT / 'configs' / f'{name}.py')))
  assert c.model.name == 'tufa'
  doc = (ROOT / 'configs' / f'{name}.py').read_text()
  assert 'jaxlm train --config configs/' + name in doc  # says how to run it


def test_overrides_are_typed():
  c = config_lib.load_config(DEMO)
  config_lib.apply_overrides(c, config_lib.parse_override_args(
      ['--config.train.steps=7', '--config.optim.lr', '1e-3',
       '--config.model.variant=S/8', '--config.data.mask_invisible=true',
       '--config.optim.decay_at=(0.5,)']))
  assert c.train.steps == 7 and c.optim.lr == 1e-3
  assert c.model.variant == 'S/8' and c.data.mask_invisible is True
  assert tuple(c.optim.decay_at) == (0.5,)


@pytest.mark.parametrize('arg, message', [
    ('--config.train.stepz=3', "unknown config key 'train.stepz'.*train.steps"),
    ('--config.nope.x=3', "unknown config key 'nope'"),
    ('--config.train.steps=many', 'train.steps: expected an int'),
    ('--config.data.mask_invisible=maybe', 'expected a bool'),
    ('--config.train=3', 'is a group'),
])
def test_bad_overrides_name_the_key(arg, message):
  c = config_lib.load_config(DEMO)
  with pytest.raises(JaxlmError, match=message):
    config_lib.apply_overrides(c, config_lib.parse_override_args([arg]))


def test_missing_config_file():
  with pytest.raises(JaxlmError, match='not found'):
    config_lib.load_config('configs/nope.py')


def _load(spec, *args):
  c = config_lib.load_config(spec)
  config_lib.apply_overrides(c, config_lib.parse_override_args(list(args)))
  return config_lib.validate(c)


def test_path_keys_expand_home_and_variables(tmp_path, monkeypatch):
  # Before: `--config.data.data_dir=~/tfds` (no shell expands ~ after =)
  # was looked up as a folder named '~'.
  monkeypatch.setenv('HOME', str(tmp_path))
  monkeypatch.setenv('JAXLM_TEST_WEIGHTS', '/weights')
  c = _load(MULTI, '--config.data.data_dir=~/tfds',
            '--config.init.encoder=${JAXLM_TEST_WEIGHTS}/dino',
            '--config.eval.normaliser=~box')  # not a path: left alone
  assert c.data.data_dir == f'{tmp_path}/tfds'
  assert c.init.encoder == '/weights/dino'
  assert c.eval.normaliser == '~box'
  with pytest.raises(JaxlmError, match=r'config key data.data_dir=\$NO_SUCH'
                     r'_JAXLM_VAR/tfds: environment variable NO_SUCH_JAXLM_'
                     r'VAR is not set'):
    _load(MULTI, '--config.data.data_dir=$NO_SUCH_JAXLM_VAR/tfds')


def test_differences_are_dotted_keys_saved_to_now():
  saved = config_lib.from_json(config_lib.to_json(config_lib.load_config(
      DEMO)))  # as a run folder holds it: tuples became lists
  now = config_lib.load_config(DEMO)
  now.train.steps = saved.train.steps + 1
  del now.data.train['syn29']
  diffs = config_lib.differences(saved, now)
  assert [k for k, _, _ in diffs] == ['data.train.syn29', 'train.steps']
  assert config_lib.describe_differences(diffs) == (
      f'data.train.syn29: {{...}} -> (absent); train.steps: '
      f'{saved.train.steps} -> {now.train.steps}')
  assert config_lib.describe_differences(diffs, limit=1).endswith(
      '(absent); and 1 more')


def test_every_training_entry_has_every_key_the_pipeline_reads():
  # Before: --config.data.train.cofw.weight=0 was an unknown key.
  c = config_lib.load_config(MULTI)
  for entry in c.data.train.values():
    for key, value in {**config_lib.TRAIN_ENTRY_DEFAULTS,
                       **config_lib.SOURCE_DEFAULTS['tfds']}.items():
      assert entry[key] == value
  demo = _load(DEMO, '--config.data.train.syn98.max_yaw=30',
               '--config.data.train.syn68.weight=0.5')
  assert demo.data.train.syn98.max_yaw == 30.0
  assert demo.data.train.syn68.weight == 0.5
  fewshot = _load(str(ROOT / 'configs' / 'tufa_fewshot.py'),
                  '--config.data.train_size=3')  # a FieldReference: kept
  assert fewshot.data.train.syn19.limit == 3


def test_a_multi_dataset_config_trains_on_the_datasets_chosen():
  from jaxlm import layouts, models
  c = _load(MULTI, '--config.data.train_only=wflw')
  assert list(c.data.train) == ['wflw']
  assert list(c.data.eval) == ['wflw']  # the others are prompted by the rest
  assert config_lib.validate(c) is c and list(c.data.train) == ['wflw']
  datasets = tuple((n, layouts.get(e.layout).num_points)  # as train.setup
                   for n, e in c.data.train.items())
  params = models.abstract_variables(models.build(c.model, datasets),
                                     c.data.image_size)['params']
  assert list(params['alignment']) == ['wflw']
  c = _load(MULTI, '--config.data.train.cofw.weight=0',
            '--config.data.train.merlrav.weight=0.0')  # weight 0: dropped
  assert set(c.data.train) == {'wflw', 'w300'}
  assert set(c.data.eval) == {'wflw', 'w300_full'}


@pytest.mark.parametrize('args, message', [
    (['--config.data.train_only=wflw,cofw68'], "config key data.train_only: no"
     " training dataset 'cofw68'; known: cofw, merlrav, w300, wflw"),
    (['--config.data.train.w300.weight=-1'],
     'config key data.train.w300.weight: -1.0 is negative'),
    (['--config.data.train_only=cofw', '--config.data.train.cofw.weight=0'],
     r'every training dataset has weight 0 or is left out by '
     r'data.train_only \(cofw, merlrav, w300, wflw\)'),
])
def test_bad_dataset_selections_name_the_key(args, message):
  with pytest.raises(JaxlmError, match=message):
    _load(MULTI, *args)
