#!/usr/bin/env bash
# One command on a fresh Python 3.11 machine: create .venv, install everything, run the main job on the demo data.
#   bash install.sh            install, then run the main job (`gvs run`) on the demo dataset
#   bash install.sh --no-run   install only
set -euo pipefail
cd "$(dirname "$0")"
PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null || PYTHON=python3
"$PYTHON" -c 'import sys; assert sys.version_info[:2] == (3, 11), f"Python 3.11 needed, found {sys.version}"' \
  || { echo "install.sh: needs Python 3.11 (set PYTHON=/path/to/python3.11)" >&2; exit 1; }
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -r requirements.txt
# face-recognition and fer declare dependencies we must not take (a dlib source build; torch and an old numpy).
.venv/bin/python -m pip install --quiet --no-deps -r requirements-nodeps.txt
# The package itself (the `gvs` command), editable, with the test and lint tools.
.venv/bin/python -m pip install --quiet -e ".[dev]"
.venv/bin/python -c "import tensorflow, keras, cv2, dlib, face_recognition, tf_keras_vis, sklearn; print('installed: tensorflow', tensorflow.__version__, '| keras', keras.__version__, '| opencv', cv2.__version__)"
if [ "${1:-}" != "--no-run" ]; then
  .venv/bin/gvs run
fi
