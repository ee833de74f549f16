"""scripts/gpu_ablate.py deals its side-by-side trainings over the cards of a machine."""

import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "gpu_ablate.py"


def _module():
    spec = importlib.util.spec_from_file_location("gpu_ablate", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_runs_are_dealt_round_robin_over_the_cards_each_seeing_one():
    card_env = _module().card_env
    env = {"PATH": "/bin", "XLA_PYTHON_CLIENT_PREALLOCATE": "false"}
    cards = [card_env(env, i, 2)["CUDA_VISIBLE_DEVICES"] for i in range(8)]
    assert cards == ["0", "1"] * 4
    # the rest of the environment travels unchanged, and the caller's is not modified
    assert card_env(env, 3, 2)["XLA_PYTHON_CLIENT_PREALLOCATE"] == "false"
    assert "CUDA_VISIBLE_DEVICES" not in env


def test_one_card_leaves_the_environment_as_it_is():
    card_env = _module().card_env
    env = {"CUDA_VISIBLE_DEVICES": "3", "PATH": "/bin"}
    assert card_env(env, 5, 1) == env
