#!/usr/bin/env bash
# Install Transfer Learning Studio into ./.venv.  `scripts/install.sh dev` adds the test tools and,
# where apt-get is available as root, Debian's chromium for the browser tests.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip
if [ "${1:-}" = "dev" ]; then
  .venv/bin/python -m pip install -q --disable-pip-version-check -r requirements-dev.txt
  # Ray and Ray Train (optional at run time) for tests/unit/test_ray_cluster.py and test_ray_faults.py (local heads).
  .venv/bin/python -m pip install -q --disable-pip-version-check -r requirements-ray.txt \
    || echo "note: Ray could not be installed; the Ray tests will be skipped" >&2
  # The web export's checks run the ONNX file in Node (onnxruntime-node) and serve onnxruntime-web's files from
  # node_modules. Its install script would fetch CUDA files from the internet: both variables skip that.
  if command -v npm >/dev/null 2>&1; then
    ONNXRUNTIME_NODE_INSTALL_CUDA=skip ONNXRUNTIME_NODE_INSTALL=skip npm ci --no-audit --no-fund --silent >/dev/null 2>&1 \
      || echo "note: the npm packages could not be installed; the web export's Node tests will be skipped" >&2
  fi
  if ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >/dev/null 2>&1 \
      || echo "note: chromium could not be installed; the browser tests will be skipped" >&2
  fi
else
  .venv/bin/python -m pip install -q --disable-pip-version-check -r requirements.txt
fi
