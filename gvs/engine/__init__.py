"""Engines that run per-clip work beyond this process.

ray_pool.py  a pool of Ray actors (``--engine ray``); the engine options themselves are gvs.core.cluster's
"""
