"""One model per modality (scene, pose, audio, faces), trained on its own from the feature cache.

architectures.py builds the models, partition.py fixes which clips train/select/report/test, data.py reads
the cache, metrics.py scores predictions, train.py trains and writes RUNS/<modality>; cli.py is its command
(`gvs train`, `python -m modalities.train`).
"""
