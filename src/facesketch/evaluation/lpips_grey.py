"""LPIPS on grey stacks under the FS2K protocol (grey repeated to 3 channels), with the frozen prior cached per process."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

from facesketch.evaluation.fsim import single_threaded


@lru_cache(maxsize=4)
def lpips_model(net: str = "alex", device: str = "cpu"):
    """The frozen LPIPS prior (real weights from the cache; UserError naming the fetch command if absent)."""
    from facesketch.priors.build import build_lpips

    # channels_last runs oneDNN's convolutions ~1.3-1.6x faster on CPU; results agree to ~1e-7
    return build_lpips(net=net, device=device).to(memory_format=torch.channels_last)


def lpips_grey_batch(model, gt: np.ndarray, gen: np.ndarray, device: str = "cpu", batch_size: int = 16) -> np.ndarray:
    """LPIPS of (N, H, W) uint8 grey stacks: grey repeated to 3 channels, x/255*2-1, spatial mean; (N,) float64."""
    out = []
    with torch.no_grad(), single_threaded(device):  # see single_threaded: contention, not compute, dominates
        for i in range(0, len(gt), batch_size):
            x0 = torch.from_numpy(np.ascontiguousarray(gt[i : i + batch_size])).to(device, torch.float32)
            x1 = torch.from_numpy(np.ascontiguousarray(gen[i : i + batch_size])).to(device, torch.float32)
            x0 = (x0 / 255.0 * 2.0 - 1.0)[:, None].expand(-1, 3, -1, -1).contiguous(memory_format=torch.channels_last)
            x1 = (x1 / 255.0 * 2.0 - 1.0)[:, None].expand(-1, 3, -1, -1).contiguous(memory_format=torch.channels_last)
            out.append(model(x0, x1).double().cpu().numpy())
    return np.concatenate(out) if out else np.zeros(0)
