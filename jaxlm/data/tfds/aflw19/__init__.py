from jaxlm.data.tfds.aflw19.aflw19_dataset_builder import Builder

__all__ = ['Builder']
