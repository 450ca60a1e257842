"""Videos -> per-clip features of the scene, pose, audio and face modalities, cached on disk."""
