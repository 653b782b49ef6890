"""Registration, the Deep Learning Microscopy network, its training, evaluation and inference."""
