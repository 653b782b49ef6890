"""Tiled, optimized inference of a trained model on CPU and GPU."""
