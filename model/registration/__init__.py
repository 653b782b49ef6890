"""Aligning 100x fields to the 40x mosaic to make training pairs."""
