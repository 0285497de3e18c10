"""Face path for arbitrary photos: OpenCV Haar detection (faces, eyes), alignment to the FS2K framing, paste-back.

Needs the ``faces`` extra (``opencv-python-headless<5``); importing this package without it raises a UserError
that says how to install it, and ``--no-align`` avoids it altogether.
"""

from __future__ import annotations

from facesketch.faces.align import AlignedFace, align_face, alignment_matrix, eye_points, paste_back
from facesketch.faces.detect import Face, FaceDetector, draw_faces

DETECTORS = ("haar", "blazeface")  # OpenCV's Haar cascades (the default), MediaPipe's BlazeFace (tiled; faces/blazeface.py)

__all__ = ["DETECTORS", "AlignedFace", "Face", "FaceDetector", "align_face", "alignment_matrix", "draw_faces", "eye_points", "paste_back"]
