"""Ensembles over the trained modality models: late fusions (hard, soft, weighted), early fusions (fc, vae),
the ablation runner and the main job that chains preprocessing, training, fusion and ablation."""
import os

# TensorFlow's C++ logs (CUDA probing on CPU-only machines, oneDNN notices) are noise here; set 0 to see them.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
