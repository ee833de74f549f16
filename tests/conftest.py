import os
import sys
from pathlib import Path

# quiet TensorFlow; tests set their own sizes, never the machine's GPU
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
# DVC stages run `python -m ...`: as in an activated environment, that python must be
# this interpreter (CI calls .venv/bin/python without activating .venv)
os.environ["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
