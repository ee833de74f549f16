"""DVC stage: the reference article's architecture sweep (cost, host latency, A12 estimate),
with quality fronts from the trained architectures (sweep.trained, sweep.quality)."""

from pathlib import Path

from livestyle.config import NetworkConfig, load_params
from livestyle.errors import run_cli
from livestyle.measure.sweep import SweepConfig, run_sweep


def main(argv):
    params = load_params()
    export = params["export"]
    section = {**params["sweep"], "size": export["sizes"][0], "display": export["display"]}
    # trained architectures are scored as deployed: with the inference input levels
    levels = NetworkConfig.from_params(params["network"]).input_levels  # checked there
    section["quality"] = {**(section.get("quality") or {}), "input_levels": list(levels)}
    result = run_sweep(SweepConfig.from_params(section, profiles=params["bench"]["profiles"]), Path("data/sweep"))
    print(f"sweep: {len(result.get('rows', []))} configurations -> data/sweep/sweep.md")
    for name, front in result["fronts"].items():
        print(f"sweep: {name} front {', '.join(front['members'])}; smallest at peer quality: "
              f"{front['smallest_at_peer_quality'] or 'none'}")


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
