"""Core of the LAST edge toolkit: layouts, graphs, preprocessing, models, checkpoints and data."""
__version__ = "0.1.0"
