r"""TUFA ViT-S/8, multi-dataset recipe of thesis §6.3.3 (Table 6.12).

  for d in wflw w300 merl_rav cofw/cofw29; do
    jaxlm build $d --manual_dir ~/downloads/$d --data_dir ~/tfds; done
  jaxlm convert dino --src dino_deitsmall8_pretrain.pth --dst ~/weights/dino_s8
  jaxlm train --config configs/tufa_vits8_multi.py --workdir gs://.../run \
      --config.data.data_dir=~/tfds --config.init.encoder=~/weights/dino_s8

(without `init.encoder` the encoder starts from random weights, with a
warning).

As `tufa_vits16_multi.py` with the DINO ViT-S/8 encoder and AdamW lr 1e-4.
Expected (thesis Table 6.12, TUFA4): inter-ocular NME 3.93% WFLW, 2.95% 300W
full, 3.07% COFW; NME_box 1.54% MERL-RAV.
"""

from jaxlm.configs import tufa_vits16_multi


def get_config(arg=None):
  c = tufa_vits16_multi.get_config(arg)
  c.model.variant = 'S/8'
  c.optim.lr = 1e-4
  return c
