from jaxlm.data.tfds.mafl.mafl_dataset_builder import Builder

__all__ = ['Builder']
