"""Ensembles over the trained modality models: late fusions (hard, soft, weighted) and early fusions (fc, vae)
as scikit-learn classifiers, their result folders, the comparison and the ablation runner (the whole chain is
gvs.chain)."""

import os

# TensorFlow's C++ logs (CUDA probing on CPU-only machines, oneDNN notices) are noise here; set 0 to see them.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
