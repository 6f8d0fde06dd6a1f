"""TFDS builders of the face datasets (see face_builder.py for the format).

Importing this package registers every builder with TFDS, so that
`tfds.builder('wflw', data_dir=...)` and `tfds.data_source(...)` find them.

| name | configs | splits |
|---|---|---|
| `wflw` | default | train, test, test_{pose,expression,illumination,makeup,occlusion,blur} |
| `w300` | default, private, masked | train, test_{common,challenging,full}; test_{indoor,outdoor}, test |
| `cofw` | cofw29, cofw68 | train, test; test |
| `merl_rav` | default | train, test, test_{frontal,half_profile,profile} |
| `aflw19` | default | train, test, test_frontal |
| `mafl` | default | train, test |

Build once (reads the files the user downloaded, writes ArrayRecord):
  jaxlm build wflw --manual_dir ~/data/WFLW --data_dir ~/tensorflow_datasets
"""

from jaxlm.data.tfds import aflw19, cofw, mafl, merl_rav, w300, wflw

BUILDERS = {m.Builder.name: m.Builder
            for m in (wflw, w300, cofw, merl_rav, aflw19, mafl)}
