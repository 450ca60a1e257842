"""Group video sentiment: the ``gvs`` command, the whole-chain runner and the shared core.

Layers, lowest first (a layer imports only the layers below it)::

    gvs.core                      vocabulary, errors, atomic file I/O, the workspace (every CACHE/ and RUNS/ path)
    preprocess  modalities  ensemble  saliency      the four stages
    gvs.chain  gvs.cli            the whole-chain runner and the ``gvs`` command
"""

__version__ = "0.2.0"
