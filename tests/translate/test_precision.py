"""Reduced precision on the user paths: bf16 translation equals fp32 within a stated tolerance on images and within
0.002 on each of the five FS2K metrics (16 test photos); 'auto' falls back to fp32 where bf16 is not fast."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from facesketch.translate.load import load_translator

IMAGE_MEAN_TOL = 1.0  # grey levels (0-255), mean absolute difference per image
METRIC_TOL = 0.002


@pytest.mark.slow
def test_bf16_translation_matches_fp32_on_images_and_on_the_five_metrics(fs2k_dir):
    from facesketch.data import fs2k
    from facesketch.evaluation.during_training import evaluate_translator

    records = fs2k.spread_subset([r for r in fs2k.load_split(fs2k_dir, "test") if r.photo and r.sketch], 16)
    fp32 = load_translator("default", precision="fp32")
    bf16 = load_translator("default", precision="bf16")
    assert fp32.amp is None and bf16.amp == torch.bfloat16
    from facesketch.data.images import load_rgb_array

    photos = [load_rgb_array(r.photo) for r in records[:4]]
    for a, b in zip(fp32.translate_arrays(photos), bf16.translate_arrays(photos)):
        d = np.abs(a.astype(np.int16) - b.astype(np.int16))
        assert d.mean() < IMAGE_MEAN_TOL, d.mean()
    try:
        from facesketch.priors.build import build_lpips

        build_lpips("alex")
        metrics = ("lpips", "ssim", "ms_ssim", "fsim", "scoot")
    except Exception:  # noqa: BLE001 - no LPIPS weights cached: the other four
        metrics = ("ssim", "ms_ssim", "fsim", "scoot")
    m32 = evaluate_translator(lambda imgs: fp32.translate_arrays(imgs), records, metrics=metrics)
    m16 = evaluate_translator(lambda imgs: bf16.translate_arrays(imgs), records, metrics=metrics)
    for k in metrics:
        assert abs(m32[k] - m16[k]) < METRIC_TOL, (k, m32[k], m16[k])


def test_auto_precision_is_bf16_only_where_it_is_fast(monkeypatch):
    import facesketch.device as dev

    monkeypatch.setattr(dev, "cpu_has_amx", lambda: False)
    assert load_translator("default", precision="auto").amp is None  # emulated bf16 is slower than fp32: fp32
    monkeypatch.setattr(dev, "cpu_has_amx", lambda: True)
    assert load_translator("default", precision="auto").amp == torch.bfloat16
    from facesketch.errors import UserError

    with pytest.raises(UserError, match="precision 'fp8'"):
        load_translator("default", precision="fp8")
