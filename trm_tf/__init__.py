"""trm-tf: Tiny Recursive Models in TensorFlow / Keras 3, built for Cloud TPU."""

__version__ = "0.1.0"
