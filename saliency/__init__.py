"""Saliency maps and explanation figures for the trained modality and fusion models.

maps.py: model + one clip's inputs -> attribution arrays (vanilla saliency, SmoothGrad and Grad-CAM by
tf-keras-vis; integrated gradients for fused models); figures.py: arrays -> PNG figures; explain.py: clip keys
or a split -> figures, reading the feature cache, RUNS/ and the raw media through gvs.core.workspace.
"""
