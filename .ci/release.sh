#!/usr/bin/env bash
# Build and check the release bundle for a version tag; prints the bundle's path last.
#
#   .ci/release.sh [--tag vX.Y.Z] [--skip-repro] [--bundle PATH]
#
# --tag        the git tag (default: $GITHUB_REF_NAME, as set by GitHub Actions);
#              must be "v" + params.yaml release.version, so a tag can never ship
#              a bundle built for another version
# --skip-repro verify an already-built bundle without running `dvc repro`
#              (local checks, and this script's own test)
# --bundle     the bundle path (default: params release.out_dir/livestyle-VERSION.zip)
# Environment: PYTHON (default .venv/bin/python when present, else python3).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

tag="${GITHUB_REF_NAME:-}"
repro=1
bundle=""
while [ $# -gt 0 ]; do
  case "$1" in
    --tag) tag="${2:?--tag needs a value}"; shift 2 ;;
    --tag=*) tag="${1#--tag=}"; shift ;;
    --skip-repro) repro=0; shift ;;
    --bundle) bundle="${2:?--bundle needs a value}"; shift 2 ;;
    --bundle=*) bundle="${1#--bundle=}"; shift ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) echo "release.sh: unknown argument: $1" >&2; exit 2 ;;
  esac
done

if [ -z "${PYTHON:-}" ]; then
  if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi

# version and bundle path come from params.yaml `release:` (livestyle.release.bundle.ReleaseConfig),
# the same place the release stage reads them: the path is named once
info="$("$PYTHON" - <<'PY'
import sys
try:
    from livestyle.release.bundle import ReleaseConfig
    from livestyle.config import load_params
    from livestyle.errors import LivestyleError

    cfg = ReleaseConfig.from_params(load_params("params.yaml").get("release"))
except LivestyleError as exc:
    sys.exit(f"release.sh: {exc}")
print(cfg.version)
print(cfg.bundle_path)
PY
)"
version="$(printf '%s\n' "$info" | sed -n 1p)"
default_bundle="$(printf '%s\n' "$info" | sed -n 2p)"

if [ -z "$tag" ]; then
  echo "release.sh: no tag (pass --tag vX.Y.Z or set GITHUB_REF_NAME)" >&2
  exit 2
fi
if [ "$tag" != "v$version" ]; then
  echo "release.sh: tag $tag does not match params.yaml release.version $version (expected v$version)" >&2
  exit 1
fi

bundle="${bundle:-$default_bundle}"

if [ "$repro" = 1 ]; then
  # the stages run `python -m stages.X`: that python must be this environment's
  PATH="$(cd "$(dirname "$PYTHON")" && pwd):$PATH" "$PYTHON" -m dvc repro >&2
fi

if [ ! -f "$bundle" ]; then
  echo "release.sh: $bundle: no bundle (did the release stage run?)" >&2
  exit 1
fi
# the check's report goes to stderr so stdout carries only the path
"$PYTHON" -m livestyle.cli verify-bundle "$bundle" >&2
echo "$bundle"
