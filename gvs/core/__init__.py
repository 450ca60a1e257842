"""The shared core: what every stage may import, and which imports no stage.

vocabulary.py  class names, modalities and their aliases, parts, video extensions
errors.py      GVSError, the one base class of every error a user can cause or fix
io.py          atomic writes, CSV through the csv module, sha256, disk-space messages
workspace.py   CacheDir and RunsDir: every path under CACHE/ and RUNS/, and the readers
"""
