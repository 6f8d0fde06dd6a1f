"""`model.remat` for every family: the same parameters, loss and gradients
with rematerialised blocks, and less kept for the backward pass.

What the forward pass keeps for the backward pass is read off `jax.vjp`'s
residuals under `jax.eval_shape` (nothing computed): the bytes a device
must hold between the two passes. XLA:CPU is asked once, for TUFA: by
default it drops the optimisation barriers that pin the recomputation into
the backward pass, so a plain jit's `memory_analysis()` shows the same
temporaries with remat as without (jax 0.10.2); steps compiled by
`train/step.py`'s `jit_step` keep them, and there remat lowers the
temporaries. GPU memory is measured by `benchmarks/gpu_suite.py`.
"""

import contextlib
import io
import re

import flax.linen as nn
import jax
import jax.ad_checkpoint
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlm import checkpoints, layouts, models
from jaxlm.config import to_json
from jaxlm.errors import JaxlmError
from jaxlm.models import remat
from jaxlm.models.hrnet import BasicBlock
from jaxlm.models.prompt_decoder import PromptDecoderLayer
from jaxlm.train import loop
from jaxlm.train.loop import setup

SIZE = 64
N = 98
# tiny settings at a 64 px input, each family's blocks of every kind
# covered once: ViT (with DINOv3's RoPE in lensmaster), decoder layers,
# HRNet modules, ResNet, ConvNeXt, MobileNetV3, HeadingNet, cascade blocks
TINY = {
    'tufa': dict(variant='Ti/16:depth=1', decoder_layers=1, decoder_mlp=64,
                 head_hidden=32),
    'slpt': dict(variant='vit:Ti/16:depth=1', width=32, num_heads=4,
                 num_layers=1, mlp_dim=32, half_sizes=(0.125,)),
    'dslpt': dict(variant='hrnet_lite', width=32, num_heads=4, num_layers=1,
                  mlp_dim=32, half_sizes=(0.125, 0.0625)),
    'regression': dict(),
    'queries3d': dict(variant='tiny:depths=1-1-1-1:dims=16-32-64-128',
                      predictor='transformer', predictor_width=32,
                      predictor_depth=2, predictor_heads=4, drop_path=0.1),
    # (its localiser is regression's ResNet: stn 'none' saves tracing it)
    'infinite3d': dict(crop_size=32, stn='none', extractor='mobilenet_v3',
                       variant='small', predictor_width=32),
    'lensmaster': dict(backbone_input=64, width=32, stages=2,
                       blocks_per_stage=1, num_heads=4,
                       variant=('Ti/16:depth=2:layerscale=1:registers=4:'
                                'rope=100:eps=5')),
    'lensmaster:heading_net': dict(backbone='heading_net', width=32,
                                   stages=1, blocks_per_stage=1,
                                   num_heads=4),
}
# also traced with 'dots'
DOTS = ('tufa', 'dslpt')
# compiled and run with and without remat (each compile takes seconds on
# a 2-core CPU: the other families' blocks are checked one by one below)
NUMERIC = ('tufa',)


def _model(case, setting):
  name = case.split(':')[0]
  cfg = models.get(name).default_config()
  cfg.update(dict(TINY[case], remat=setting))
  return models.build(cfg, (('syn98', N),)), models.get(name)


def _loss_fn(case, setting):
  """(loss(params, variables) -> (loss, new batch_stats), model) of a
  training forward pass on a fixed batch of 2."""
  model, family = _model(case, setting)
  loss_of = family.loss(model, [layouts.get('syn98')])
  rng = np.random.default_rng(0)
  batch = dict(
      image=jnp.asarray(rng.integers(0, 255, (2, SIZE, SIZE, 3)), jnp.uint8),
      point_index=jnp.tile(jnp.arange(N, dtype=jnp.int32), (2, 1)),
      target=jnp.asarray(rng.uniform(0.2, 0.8, (2, N, 2)), jnp.float32),
      weight=jnp.ones((2, N)))

  def loss(params, variables):
    mutable = ['batch_stats'] if 'batch_stats' in variables else False
    out = model.apply(dict(variables, params=params), batch['image'],
                      point_index=batch['point_index'], train=True,
                      rngs={'dropout': jax.random.key(1)}, mutable=mutable)
    out, new = out if mutable else (out, {})
    return loss_of(out, batch)[0], new
  return loss, model


def _variables(model, seed=0):
  """Random variables of `model`'s shapes (no init computed): parameters
  N(0, 0.05), BatchNorm statistics 0 / 1, constants (mean shapes, query
  tables) U(0.2, 0.8)."""
  rng = np.random.default_rng(seed)
  shapes = jax.eval_shape(
      lambda: models.init_variables(model, jax.random.key(0), SIZE, N))

  def fill(path, x):
    keys = [getattr(k, 'key', '') for k in path]
    if keys[0] == 'params':
      v = rng.normal(0.0, 0.05, x.shape)
    elif keys[0] == 'batch_stats':
      v = np.ones(x.shape) if keys[-1] == 'var' else np.zeros(x.shape)
    else:
      v = rng.uniform(0.2, 0.8, x.shape)
    return jnp.asarray(v, x.dtype)
  return jax.tree_util.tree_map_with_path(fill, shapes)


def _kept_bytes(loss, variables):
  """Bytes of the activations the forward pass keeps for the backward pass
  (`jax.ad_checkpoint.print_saved_residuals`, traced under
  `jax.eval_shape`: nothing is computed), the parameters not counted."""
  out = io.StringIO()

  def trace(v):
    with contextlib.redirect_stdout(out):
      jax.ad_checkpoint.print_saved_residuals(lambda p: loss(p, v)[0],
                                              v['params'])
    return 0
  jax.eval_shape(trace, variables)
  total = 0
  for line in out.getvalue().splitlines():  # 'f32[2,16,384] output of ...'
    m = re.match(r'(bool|[a-z]+(\d+))\[([\d,]*)\] (.*)', line)
    if m and not m.group(4).startswith('from the argument'):  # not keys
      itemsize = int(m.group(2)) // 8 if m.group(2) else 1
      total += itemsize * int(np.prod(
          [int(d) for d in m.group(3).split(',') if d]))
  return total


def _value_and_grads(losses, params, *args):
  """[value_and_grad(loss)(params, *args) for loss in losses], compiled as
  one program with XLA:CPU's quickest settings (a third of the default's
  compile time on a 2-core CPU; the same numbers)."""
  both = lambda p, *a: [jax.value_and_grad(f, has_aux=True)(p, *a)
                        for f in losses]
  return jax.jit(both).lower(params, *args).compile(
      {'xla_backend_optimization_level': 0,
       'xla_cpu_use_fusion_emitters': False})(params, *args)


@pytest.mark.parametrize('case', sorted(TINY))
def test_remat_keeps_less_for_the_backward_pass(case):
  """Every family's blocks: with 'blocks' at most 60% of the activations
  kept (tracing only). Each setting runs on the variables made without
  remat: a parameter path that changed would be missing (checkpoints load
  whatever the setting)."""
  settings = ('none', 'blocks') + (('dots',) if case in DOTS else ())
  losses = {s: _loss_fn(case, s) for s in settings}
  variables = jax.eval_shape(lambda: _variables(losses['none'][1]))
  kept = {s: _kept_bytes(f, variables) for s, (f, _) in losses.items()}
  print(case, {s: f'{b / 2**20:.2f} MiB' for s, b in kept.items()})
  assert 0 < kept['blocks'] < 0.6 * kept['none'], kept
  if 'dots' in kept:  # the products' results kept too: in between
    assert kept['blocks'] < kept['dots'] < kept['none'], kept


@pytest.mark.slow
def test_cpu_steps_keep_the_barriers_and_the_memory_drops():
  """XLA:CPU's compiled temporaries of a TUFA gradient (Ti/16, 3 blocks,
  batch 8 at 128 px): with the options `jit_step` compiles CPU steps with,
  remat's barriers survive and 'blocks' needs less memory than 'none' (S/8
  at batch 8 and 256 px: 11.6 -> 1.6 GiB, benchmarks/results/remat_cpu.md);
  with XLA's defaults it does not."""
  from jaxlm.train.step import CPU_COMPILER_OPTIONS  # pylint: disable=g-import-not-at-top
  b, size = 8, 128
  batch = dict(
      image=jax.ShapeDtypeStruct((b, size, size, 3), jnp.uint8),
      point_index=jax.ShapeDtypeStruct((b, N), jnp.int32),
      target=jax.ShapeDtypeStruct((b, N, 2), jnp.float32),
      weight=jax.ShapeDtypeStruct((b, N), jnp.float32))
  temp = {}
  for s in ('none', 'blocks'):
    cfg = models.get('tufa').default_config()
    cfg.update(dict(TINY['tufa'], variant='Ti/16:depth=3', remat=s))
    model = models.build(cfg, (('syn98', N),))
    loss_of = models.get('tufa').loss(model, [layouts.get('syn98')])
    variables = jax.eval_shape(
        lambda m=model: models.init_variables(m, jax.random.key(0), size, N))

    def loss(params, variables, batch, m=model, loss_of=loss_of):
      out = m.apply(dict(variables, params=params), batch['image'],
                    point_index=batch['point_index'], train=True,
                    rngs={'dropout': jax.random.key(1)})
      return loss_of(out, batch)[0]

    for options in ('jit_step', 'default'):
      grad = jax.jit(jax.grad(loss), compiler_options=CPU_COMPILER_OPTIONS
                     if options == 'jit_step' else None)
      compiled = grad.lower(variables['params'], variables, batch).compile()
      temp[options, s] = compiled.memory_analysis().temp_size_in_bytes
  print({k: f'{v / 2**20:.2f} MiB' for k, v in temp.items()})
  assert temp['jit_step', 'blocks'] < 0.6 * temp['jit_step', 'none'], temp
  if jax.default_backend() == 'cpu':  # XLA:CPU's defaults drop the barriers
    assert temp['default', 'blocks'] >= 0.9 * temp['default', 'none'], temp


@pytest.mark.parametrize('case', NUMERIC)
def test_remat_same_loss_gradients_and_batch_stats(case):
  """Compiled forward + backward of a whole family: the numbers do not
  change."""
  loss_none, model = _loss_fn(case, 'none')
  loss_blocks, _ = _loss_fn(case, 'blocks')
  variables = _variables(model)
  ((l0, stats0), g0), ((l1, stats1), g1) = _value_and_grads(
      (loss_none, loss_blocks), variables['params'], variables)
  assert np.isfinite(float(l0))
  np.testing.assert_allclose(l1, l0, rtol=1e-5, atol=1e-6)
  scale = max(float(jnp.abs(x).max()) for x in jax.tree_util.tree_leaves(g0))
  assert scale > 0
  for (path, a), (_, b) in zip(jax.tree_util.tree_flatten_with_path(g0)[0],
                               jax.tree_util.tree_flatten_with_path(g1)[0],
                               strict=True):
    np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-5 * scale,
                               err_msg=jax.tree_util.keystr(path))
  for a, b in zip(jax.tree_util.tree_leaves(stats0),
                  jax.tree_util.tree_leaves(stats1), strict=True):
    np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6)


class _DropoutAndBatchNorm(nn.Module):
  """A decoder layer with dropout and an HRNet block with BatchNorm, each
  wrapped by `remat.checkpointed` as the families wrap them."""
  setting: str

  @nn.compact
  def __call__(self, x, train):
    layer = remat.checkpointed(PromptDecoderLayer, self.setting,
                               static_argnums=(5,))
    block = remat.checkpointed(BasicBlock, self.setting, static_argnums=(2,))
    t = layer(4, 16, 0.5, name='layer')(x[:, 0, :4], x[:, 1, :4], x[:, 2],
                                       x[:, 3], not train)
    y = block(8, name='block')(x * t.mean(), train)
    return (y ** 2).mean()


def test_checkpointed_blocks_keep_dropout_and_batch_stats():
  """Rematerialised blocks draw the same dropout masks and update the
  BatchNorm statistics once, as the plain ones (compiled: small)."""
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.normal(size=(2, 4, 4, 8)), jnp.float32)
  variables = jax.tree_util.tree_map(
      lambda s: jnp.asarray(rng.normal(0, 0.3, s.shape), s.dtype),
      jax.eval_shape(lambda: _DropoutAndBatchNorm('none').init(
          jax.random.key(0), x, False)))

  def loss(setting):
    return lambda params: _DropoutAndBatchNorm(setting).apply(
        dict(variables, params=params), x, True,
        rngs={'dropout': jax.random.key(3)}, mutable=['batch_stats'])
  results = _value_and_grads([loss(s) for s in remat.POLICIES],
                             variables['params'])
  (l0, stats0), g0 = results[0]
  for (l1, stats1), g1 in results[1:]:
    np.testing.assert_allclose(l1, l0, rtol=1e-6)
    for a, b in zip(jax.tree_util.tree_leaves((g0, stats0)),
                    jax.tree_util.tree_leaves((g1, stats1)), strict=True):
      np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-7)
  assert float(jnp.abs(stats0['batch_stats']['block']['bn1']['mean']).max()
               ) > 0  # the statistics moved


def test_every_family_has_the_setting_and_unknown_values_name_it():
  for name, family in models.FAMILIES.items():
    assert family.defaults()['remat'] == 'none', name
  cfg = models.get('tufa').default_config()
  cfg.remat = 'everything'
  with pytest.raises(JaxlmError, match=r"model\.remat.*'everything'.*none, "
                     r'blocks, dots'):
    models.build(cfg, (('syn98', N),))
  # a config written before the key existed builds without it
  old = models.get('regression').default_config()
  del old['remat']
  assert models.build(old, (('syn68', 68),)).remat == 'none'


def test_a_run_resumes_and_starts_from_another_with_remat_changed(
    tiny, tmp_path):
  """Remat changes how the step computes, not the parameters: switching it
  on for a run that ran out of memory is no other run."""
  cfg = tiny()
  checkpoints.write_run_metadata(tmp_path, to_json(cfg), setup(cfg).datasets)
  cfg.model.remat = 'blocks'
  exp = setup(cfg)
  loop._check_same_run(exp, tmp_path)  # no refusal
  assert not loop.setting_differences(exp.family, cfg.model, tiny().model,
                                      ignore=loop.COMPUTE_ONLY)
  cfg.model.decoder_layers = 3
  with pytest.raises(JaxlmError, match=r'saved -> now: model.decoder_layers'):
    loop._check_same_run(setup(cfg), tmp_path)
