"""Datasets: the FS2K index and its quirks, the generic unpaired folder layout, CycleGAN-style sampling."""
