"""Losses: adversarial (LSGAN), cycle/identity L1, the image pool, and the prior terms (edge, surface normals).

Importing the package fills the loss-term registry (``registry.py``: the core terms; ``priors.py``: edge, normal).
"""

from facesketch.losses import priors, registry  # noqa: F401
