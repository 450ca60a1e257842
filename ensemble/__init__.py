"""Ensembles over the trained modality models: late fusions (hard, soft, weighted), early fusions (fc, vae),
the ablation runner and the main job that chains preprocessing, training, fusion and ablation."""
