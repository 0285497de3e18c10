"""facesketch: face photo <-> sketch translation with an attention-guided CycleGAN and geometric prior losses."""

__version__ = "0.1.0"
