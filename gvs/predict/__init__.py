"""Predict the sentiment of any video from a model bundle (``gvs export``) or a RUNS folder (``gvs predict``)."""
