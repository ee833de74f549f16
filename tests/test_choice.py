import json
from pathlib import Path

import pytest

from livestyle.config import WEIGHTS, StyleConfig, TrainConfig
from livestyle.errors import LivestyleError
from livestyle.model.choice import CHOICE_FILE, RUNS_DIR, choose, train_candidates


def _f(texture, colour, content):
    return {"texture": texture, "colour": colour, "content": content}


def test_the_run_with_the_best_texture_and_colour_ranks_ships():
    figures = {0: _f(0.40, 9.9, 0.236), 1: _f(0.36, 9.0, 0.250), 2: _f(0.35, 9.4, 0.249), 3: _f(0.39, 10.6, 0.238)}
    assert choose(figures) == 1  # seeds 1 and 2 tie on rank sums (1 + 0, 0 + 1): the lower colour ships
    figures[2] = _f(0.35, 8.9, 0.249)
    assert choose(figures) == 2  # now first on both


def test_a_run_that_loses_the_scene_is_not_chosen_however_painterly():
    # seed 5 is first on texture and colour, but its content distance is 30 % over the best run's
    figures = {5: _f(0.10, 4.0, 0.30), 6: _f(0.40, 9.0, 0.23), 7: _f(0.45, 8.0, 0.24)}
    assert choose(figures) == 7  # 6 and 7 tie on rank sums; 7's colour is the lower
    figures[7] = _f(0.45, 9.5, 0.24)
    assert choose(figures) == 6


def test_ties_go_to_the_lower_colour_then_the_lower_seed():
    assert choose({3: _f(0.3, 8.0, 0.2), 4: _f(0.2, 9.0, 0.2)}) == 3  # rank sums 1 and 1: colour 8 < 9
    assert choose({9: _f(0.3, 8.0, 0.2), 2: _f(0.3, 8.0, 0.2)}) == 2


def _cfg(candidates, seed=4):
    return StyleConfig(name="s", image="p.png", train=TrainConfig(seed=seed, candidates=candidates))


def _fake_train(calls):
    def train(cfg, run_dir: Path):
        calls.append((cfg.train.seed, run_dir))
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / WEIGHTS).write_bytes(f"weights of seed {cfg.train.seed}".encode())
        (run_dir / "samples").mkdir(exist_ok=True)
        (run_dir / "samples" / "step_2.png").write_text(str(cfg.train.seed))
        (run_dir / "train.json").write_text(json.dumps({"seed": cfg.train.seed}))
    return train


def test_candidates_train_each_seed_apart_and_the_chosen_run_becomes_the_style(tmp_path):
    calls = []
    quality = {4: _f(0.5, 9.0, 0.2), 5: _f(0.3, 7.0, 0.21), 6: _f(0.1, 6.0, 0.4)}

    def judge(weights: Path):
        return {**quality[int(weights.read_text().split()[-1])], "flat_area": 0.0}

    out = tmp_path / "train" / "s"
    (out / "samples").mkdir(parents=True)
    (out / "samples" / "old.png").write_text("from a run before")
    record = train_candidates(_cfg(3), _fake_train(calls), out, judge)
    assert [s for s, _ in calls] == [4, 5, 6]
    assert [d for _, d in calls] == [out / RUNS_DIR / f"seed_{s}" for s in (4, 5, 6)]
    # seed 6 paints best but loses the scene (content 0.4 against 0.2): seed 5 ships
    assert record["chosen_seed"] == 5
    assert (out / WEIGHTS).read_text() == "weights of seed 5"
    assert sorted(p.name for p in (out / "samples").iterdir()) == ["step_2.png"]
    assert json.loads((out / "train.json").read_text()) == {"seed": 5}
    written = json.loads((out / CHOICE_FILE).read_text())
    assert written["runs"]["6"] == quality[6] and written["chosen_colour"] == 7.0 and written["candidates"] == 3


def test_one_candidate_trains_in_place_and_judges_nothing(tmp_path):
    calls = []

    def judge(weights):
        raise AssertionError("one run has nothing to choose from")

    record = train_candidates(_cfg(1, seed=0), _fake_train(calls), tmp_path, judge)
    assert calls == [(0, tmp_path)] and record == {"chosen_seed": 0, "candidates": 1}
    assert not (tmp_path / RUNS_DIR).exists()
    assert json.loads((tmp_path / CHOICE_FILE).read_text()) == record


def test_zero_candidates_is_a_params_error():
    with pytest.raises(LivestyleError, match="candidates"):
        TrainConfig(candidates=0)


def test_a_run_that_blots_synthetic_skies_is_not_chosen_however_good_its_figures():
    # seed 1 wins every figure on the photos but painted a flat blob on 2 of the skies
    figures = {1: {**_f(0.20, 6.0, 0.20), "sky_blobs": 2}, 2: {**_f(0.40, 9.0, 0.22), "sky_blobs": 0},
               3: {**_f(0.35, 9.5, 0.21), "sky_blobs": 0}}
    assert choose(figures) == 2  # 2 and 3 tie on rank sums: the lower colour ships
    # every run blots: the fewest blots go on to the rule
    figures = {1: {**_f(0.20, 6.0, 0.20), "sky_blobs": 1}, 2: {**_f(0.40, 9.0, 0.22), "sky_blobs": 3}}
    assert choose(figures) == 1
    # without the count (choice_probes 0) the rule is the figures' alone
    assert choose({s: {k: v for k, v in f.items() if k != "sky_blobs"} for s, f in figures.items()}) == 1


def test_the_judges_sky_blob_count_reaches_the_choice_and_its_record(tmp_path):
    quality = {4: {**_f(0.2, 6.0, 0.20), "sky_blobs": 1}, 5: {**_f(0.3, 8.0, 0.21), "sky_blobs": 0}}
    record = train_candidates(_cfg(2), _fake_train([]), tmp_path,
                              lambda w: {**quality[int(w.read_text().split()[-1])], "lossnet_style": 1.0})
    assert record["chosen_seed"] == 5 and (tmp_path / WEIGHTS).read_text() == "weights of seed 5"
    assert record["runs"]["4"] == quality[4]  # the count kept, the judge's other keys dropped
    written = json.loads((tmp_path / CHOICE_FILE).read_text())["runs"]["5"]["sky_blobs"]
    assert written == 0 and isinstance(written, int)  # a count in choice.json, not 0.0
