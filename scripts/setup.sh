#!/usr/bin/env bash
# Create .venv with the pinned environment (requirements.lock) and livestyle itself.
# Idempotent: a second run only checks that the lock is installed.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3
stamp=.venv/.lock.sha256
want=$(sha256sum requirements.lock pyproject.toml | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -r requirements.lock
.venv/bin/python -m pip install -q --no-deps -e .
# offline-friendly DVC and Prefect: no telemetry, no update checks
.venv/bin/dvc config --local core.analytics false >/dev/null 2>&1 || true
echo "$want" > "$stamp"
echo "livestyle environment ready in .venv"
