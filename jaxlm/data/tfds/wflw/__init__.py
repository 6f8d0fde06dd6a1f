from jaxlm.data.tfds.wflw.wflw_dataset_builder import Builder

__all__ = ['Builder']
