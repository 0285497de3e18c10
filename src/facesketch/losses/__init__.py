"""Losses: adversarial (LSGAN), cycle/identity L1, the image pool, and the prior terms (edge, surface normals)."""
