"""Videos -> per-clip features of the scene, pose, audio and face modalities, cached on disk."""

import os

# TensorFlow's C++ logs (CUDA probing on CPU-only machines, oneDNN notices) are noise here; set 0 to see them.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
