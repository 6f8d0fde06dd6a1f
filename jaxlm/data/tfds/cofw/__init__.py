from jaxlm.data.tfds.cofw.cofw_dataset_builder import Builder

__all__ = ['Builder']
