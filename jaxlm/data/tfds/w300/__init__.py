from jaxlm.data.tfds.w300.w300_dataset_builder import Builder

__all__ = ['Builder']
