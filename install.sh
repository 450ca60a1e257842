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
# The package itself (the `gvs` command), editable, with the test and lint tools and the Ray extra.
.venv/bin/python -m pip install --quiet -e ".[dev,ray]"

# OpenL3 (the paper's audio embeddings). Where the package index and github.com answer (checked in 5 s), the real
# openl3 0.4.2 from the index: its setup.py downloads the weights from GitHub while installing. Offline, from its
# source beside the project (../shared or $GVS_SHARED) with that download taken out: no weights, so
# `--audio-backend auto` stays on the built-in log-mel features. One line says which happened.
# >>> openl3 (the block between these markers runs on its own from the checkout, given .venv)
openl3_weights_installed() {  # the weight file the audio backend loads (preprocess/model_registry.py names it)
  .venv/bin/python -c "import sys; from preprocess.model_files import package_copy; \
from preprocess.model_registry import REGISTRY; sys.exit(0 if package_copy(REGISTRY['openl3-audio']) else 1)" 2>/dev/null
}
openl3_online() {  # the package index and GitHub both answer within 5 seconds (a hanging DNS lookup counts as no)
  .venv/bin/python - "${PIP_INDEX_URL:-https://pypi.org/simple}" <<'PY'
import os, sys, urllib.request
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
urls = (sys.argv[1].rstrip("/") + "/openl3/", "https://github.com/marl/openl3/raw/models/openl3_audio_mel256_music-v0_4_0.h5.gz")
def answers(url):
    with urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=5):
        return True
pool = ThreadPoolExecutor(len(urls))
futures = [pool.submit(answers, url) for url in urls]
done, _ = wait(futures, timeout=5, return_when=FIRST_EXCEPTION)
os._exit(0 if len(done) == 2 and all(f.exception() is None for f in done) else 1)
PY
}
install_openl3_source() {  # $1: the openl3 0.4.2 source tarball; says why and returns 1 when it cannot
  local build status=0
  build="$(mktemp -d)"
  local setup="$build/openl3-0.4.2/setup.py"
  if ! tar -xzf "$1" -C "$build"; then
    status=1
  elif ! sed -i "s/^if len(sys.argv) > 1 and sys.argv\[1\] == 'sdist':$/if True:  # gvs: no weight download/" "$setup" \
    || ! grep -q "^if True:  # gvs: no weight download" "$setup"; then
    echo "install.sh: $1: no weight download found to take out of setup.py" >&2
    status=1
  elif ! .venv/bin/python -m pip install --quiet --no-deps "$build/openl3-0.4.2" >"$build/pip.log" 2>&1; then
    cat "$build/pip.log" >&2
    status=1
  fi
  rm -rf "$build"
  return "$status"
}
OPENL3_SOURCE="${GVS_SHARED:-../shared}/src/openl3-0.4.2-source.tar.gz"
OPENL3_LOG="$(mktemp)"
keep_log=0
if openl3_weights_installed; then
  echo "install.sh: openl3 0.4.2 with its weights is already installed (audio backend auto uses OpenL3)"
elif openl3_online && .venv/bin/python -m pip install --quiet --force-reinstall --no-deps openl3==0.4.2 >"$OPENL3_LOG" 2>&1 \
  && openl3_weights_installed; then
  echo "install.sh: openl3 0.4.2 installed from the package index with its weights from GitHub (audio backend auto uses OpenL3)"
elif [ -f "$OPENL3_SOURCE" ] && install_openl3_source "$OPENL3_SOURCE"; then
  why="offline"
  if [ -s "$OPENL3_LOG" ]; then why="openl3 from the package index failed (pip's log: $OPENL3_LOG)" && keep_log=1; fi
  echo "install.sh: $why: openl3 installed from $OPENL3_SOURCE without its weights (audio backend auto uses logmel);" \
    "with internet: .venv/bin/pip install --force-reinstall --no-deps openl3==0.4.2"
else
  why="offline"
  if [ -s "$OPENL3_LOG" ]; then why="the package index install failed (pip's log: $OPENL3_LOG)" && keep_log=1; fi
  from="no source at $OPENL3_SOURCE"
  if [ -f "$OPENL3_SOURCE" ]; then from="its source $OPENL3_SOURCE did not install (see above)"; fi
  echo "install.sh: openl3 not installed ($why; $from): audio uses logmel" >&2
fi
[ "$keep_log" = 1 ] || rm -f "$OPENL3_LOG"
# <<< openl3
# Headless Chromium (and its driver) render `gvs report` pages for screenshots and drive `gvs serve`'s page in the
# browser test; reports and the server themselves need no browser.
# Installed with apt where this runs as root (Debian's chromium: browsers a package downloads at run time need
# internet); elsewhere a hint.
if ! command -v chromedriver >/dev/null || { ! command -v chromium >/dev/null && ! command -v chromium-browser >/dev/null; }; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; } \
      || echo "install.sh: chromium could not be installed with apt; the report page test checks HTML only, the browser test skips" >&2
  else
    echo "install.sh: no chromium; for report screenshots and the browser tests: sudo apt-get install chromium chromium-driver (optional)"
  fi
fi
.venv/bin/python -c "import tensorflow, keras, cv2, dlib, face_recognition, tf_keras_vis, sklearn; print('installed: tensorflow', tensorflow.__version__, '| keras', keras.__version__, '| opencv', cv2.__version__)"
if [ "${1:-}" != "--no-run" ]; then
  .venv/bin/gvs run
fi
