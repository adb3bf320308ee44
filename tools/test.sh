#!/usr/bin/env bash
# Runs the test suite (sets up .venv first when it is missing). Extra arguments go to pytest:
#   tools/test.sh                  # everything
#   tools/test.sh -k bundle -x     # a subset
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/edgespec ]; then
  tools/setup.sh
else
  # Rebuild the native library when runtimes/ changed (incremental, a few seconds otherwise).
  .venv/bin/python -m pip install --disable-pip-version-check -q --no-build-isolation --no-deps -e . 
fi
exec .venv/bin/python -m pytest -q "$@"
