"""Prefect flows over the DVC pipeline (the stages themselves live in dvc.yaml).

Prefect reads its settings once, when it is first imported, so the per-project
defaults are set here, before any `import prefect`: the database and profiles under
the repo's git-ignored .prefect/ (not a user-wide ~/.prefect shared between
projects), and no analytics calls from an offline machine. Anything already in the
environment wins.
"""

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]

os.environ.setdefault("PREFECT_HOME", str(PROJECT_ROOT / ".prefect"))
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
