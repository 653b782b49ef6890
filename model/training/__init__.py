"""Training and evaluation of the Deep Learning Microscopy network."""
