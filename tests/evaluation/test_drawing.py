"""The figures of a drawing: chroma, checkerboard energy and white-paper share on images whose answers are known."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from facesketch.evaluation.drawing import checker_energy, figures_of, folder_figures, mean_chroma, paper_share


def test_chroma_is_zero_for_grey_and_the_channel_spread_otherwise():
    grey = np.full((8, 8, 3), 117, np.uint8)
    assert mean_chroma(grey) == 0.0 and mean_chroma(grey[..., 0]) == 0.0
    tinted = grey.copy()
    tinted[..., 2] = 127  # a bluish background, as a copied photo leaves
    assert mean_chroma(tinted) == pytest.approx(10.0)
    red = np.zeros((4, 4, 3), np.uint8)
    red[..., 0] = 255
    assert mean_chroma(red) == 255.0


def test_checker_energy_finds_the_two_pixel_period_and_nothing_in_smooth_images():
    y, x = np.mgrid[:64, :64]
    checker = ((x + y) % 2) * 40 + 100.0
    assert checker_energy(checker) == pytest.approx(1.0)  # all of it at the Nyquist corner
    stripes = (x % 2) * 40 + 100.0
    assert checker_energy(stripes) == pytest.approx(1.0)
    smooth = 128 + 60 * np.sin(2 * np.pi * x / 32) * np.cos(2 * np.pi * y / 16)
    assert checker_energy(smooth) < 1e-12
    mixed = smooth + 0.1 * (checker - 120)
    assert 0 < checker_energy(mixed) < 0.01
    assert checker_energy(np.full((8, 8), 200.0)) == 0.0  # blank paper: no energy at all


def test_paper_share_counts_pixels_brighter_than_230():
    g = np.array([[231, 230], [255, 0]], np.uint8)
    assert paper_share(g) == 0.5


def test_folder_figures_average_files(tmp_path):
    Image.fromarray(np.full((16, 16), 250, np.uint8)).save(tmp_path / "white.png")
    blue = np.full((16, 16, 3), 240, np.uint8)
    blue[..., 2] = 250
    Image.fromarray(blue).save(tmp_path / "blue.png")
    f = folder_figures(sorted(tmp_path.glob("*.png")))
    assert f["n"] == 2 and f["chroma"] == pytest.approx(5.0) and f["paper_share"] == pytest.approx(1.0)
    assert figures_of(blue)["chroma"] == 10.0
