"""Bad data inputs: thin and huge images refused before any resize; odd annotation entries named."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import make_unpaired

from facesketch.errors import UserError


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_unpaired(tmp_path_factory.mktemp("rel_data"))


def test_thin_and_huge_images_are_refused_before_any_resize(tmp_path):
    from PIL import Image

    from facesketch.data.images import UnreadableImageError, load_rgb

    thin = tmp_path / "thin.png"
    Image.new("RGB", (1000, 1)).save(thin)
    with pytest.raises(UnreadableImageError, match="aspect ratio"):
        load_rgb(thin)
    from facesketch.faces import FaceDetector

    pytest.importorskip("cv2")
    with pytest.raises(UserError, match="aspect ratio"):
        FaceDetector().detect(np.zeros((1, 3000, 3), np.uint8))


def test_annotation_with_a_null_or_integer_image_name_is_named(tmp_path):
    from facesketch.data import fs2k

    for bad in ("null", "7"):
        (tmp_path / "anno_train.json").write_text(f'[{{"image_name": {bad}, "style": 0}}]')
        with pytest.raises(UserError, match="unexpected image_name"):
            fs2k.load_split(tmp_path, "train")
