"""Ensembles over the trained modality models: late fusions (hard, soft, weighted) and early fusions (fc, vae)
as scikit-learn classifiers, their result folders, the comparison and the ablation runner (the whole chain is
gvs.chain)."""
