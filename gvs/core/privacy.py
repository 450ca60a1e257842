"""``--blur-faces``: every face blurred in every image a report or a predict run exports (frames, thumbnails)."""

from __future__ import annotations

import cv2
import numpy as np

BLUR_MARGIN = 0.25  # share of the face box added on each side, so hair and chin are blurred too


def blur_faces(frame: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """A copy of ``frame`` (H, W, 3) uint8 with each face box (F, 4) (top, right, bottom, left) strongly blurred."""
    out = frame.copy()
    height, width = frame.shape[:2]
    for top, right, bottom, left in np.asarray(boxes).reshape(-1, 4):
        pad_y, pad_x = (bottom - top) * BLUR_MARGIN, (right - left) * BLUR_MARGIN
        y0, y1 = int(max(0, top - pad_y)), int(min(height, bottom + pad_y))
        x0, x1 = int(max(0, left - pad_x)), int(min(width, right + pad_x))
        if y1 <= y0 or x1 <= x0:
            continue
        kernel = max(3, (max(y1 - y0, x1 - x0) // 2) | 1)  # odd, about half the face: no feature survives
        out[y0:y1, x0:x1] = cv2.GaussianBlur(out[y0:y1, x0:x1], (kernel, kernel), 0)
    return out


def blurred_thumbnail(image: np.ndarray) -> np.ndarray:
    """A copy of a person's thumbnail (h, w, 3) uint8, blurred whole and strongly: the thumbnail is a face crop
    with half the face's size of margin on each side, so the face fills its middle half; a Gaussian of a third of
    half the crop's longer side leaves no feature of it (nor of the margin: hair, neighbours' faces)."""
    height, width = image.shape[:2]
    kernel = max(3, (max(height, width) // 2) | 1)
    return cv2.GaussianBlur(np.ascontiguousarray(image), (kernel, kernel), kernel / 3)
