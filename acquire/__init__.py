"""Paired 40x/100x acquisition on a Micro-Manager core, its dataset format, and live mode."""
