from jaxlm.data.tfds.merl_rav.merl_rav_dataset_builder import Builder

__all__ = ['Builder']
