"""Frames in and out: probing and decoding sources, encoding guide videos, fitting frames to the
target size, damaged sources, the synthetic sample video."""
