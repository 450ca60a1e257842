"""Calibration frames for int8 post-training quantisation: real photographs that installed packages ship.

NNCF needs a few dozen representative inputs to choose the int8 ranges of each layer. A user's machine may
have no video yet, so the frames come from images inside the scikit-image and matplotlib wheels (the astronaut,
coffee, chelsea, rocket, camera and Grace Hopper photographs, no download), each cut in several crops and
mirrored, with brightness changes: people, faces, indoor and outdoor scenes at the video frames' scale.
The agreement limits are checked on held-out frames of the shared clips (tests/test_backend.py), never on these.
"""

from __future__ import annotations

import cv2
import numpy as np

CALIBRATION_VERSION = 1  # part of the int8 model's cache key: bump when the frames change
N_CALIBRATION = 48  # frames; NNCF's statistics settle well below this for ResNet-50 (cosine >= 0.99)
_SEED = 0


def photographs() -> list[np.ndarray]:
    """RGB uint8 photographs (H, W, 3) shipped inside installed packages."""
    import matplotlib.cbook
    import skimage.data

    images = [skimage.data.astronaut(), skimage.data.coffee(), skimage.data.chelsea(), skimage.data.rocket()]
    images.append(np.repeat(skimage.data.camera()[..., None], 3, axis=2))
    hopper = cv2.imread(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))
    images.append(cv2.cvtColor(hopper, cv2.COLOR_BGR2RGB))
    return images


def calibration_frames(width: int, height: int, count: int = N_CALIBRATION) -> np.ndarray:
    """(count, height, width, 3) uint8 RGB frames: random crops (half to all of each photograph, any aspect),
    mirrored half the time, brightness x0.6-1.3, resized to ``width x height``; the same frames every call.

    Parameters
    ----------
    width, height : int
        Size of each frame in pixels.
    count : int
        How many frames.

    Returns
    -------
    frames : ndarray of shape (count, height, width, 3), uint8 RGB
    """
    rng = np.random.default_rng(_SEED)
    images = photographs()
    frames = np.empty((count, height, width, 3), dtype=np.uint8)
    for index in range(count):
        image = images[index % len(images)]
        rows, cols = image.shape[:2]
        crop_h, crop_w = (int(rng.uniform(0.5, 1.0) * side) for side in (rows, cols))
        top, left = rng.integers(0, rows - crop_h + 1), rng.integers(0, cols - crop_w + 1)
        crop = image[top : top + crop_h, left : left + crop_w]
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        crop = np.clip(crop.astype(np.float32) * rng.uniform(0.6, 1.3), 0, 255).astype(np.uint8)
        frames[index] = cv2.resize(crop, (width, height), interpolation=cv2.INTER_AREA)
    return frames
