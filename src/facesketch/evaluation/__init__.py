"""Sketch-quality evaluation under the FS2K protocol: LPIPS, SSIM, MS-SSIM, FSIM and SCOOT on uint8 grey images.

The metrics live in one registry (``evaluation/registry.py``): key, header, direction and batch function.
"""

from facesketch.evaluation.registry import REGISTRY, metric_keys, paper_keys

# The paper's columns, in its order (fixed); `ssim_wang2003` is reported beside them (see docs/metrics.md).
# Snapshots of the registry's built-ins for readers of these names; code that must see every registered metric
# calls ``metric_keys()`` / ``paper_keys()``.
METRICS = paper_keys()
EXTRA_METRICS = tuple(k for k in metric_keys() if k not in METRICS)
HIGHER_IS_BETTER = {k: m.higher_is_better for k, m in REGISTRY.items()}
