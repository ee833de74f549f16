"""The flicker scripts' shared command line: filters with their own network settings."""

import argparse

import pytest

from livestyle.media import clip_filters


def _parse(*argv):
    ap = argparse.ArgumentParser()
    clip_filters.add_arguments(ap)
    return clip_filters.resolve(ap.parse_args(list(argv)))


def test_each_filter_keeps_its_label_weights_and_network_overrides():
    cfg, filters = _parse("out", "a=runs/a.h5@{\"antialias\": 3}", "b=runs/b.h5", "--clip", "fox.mp4",
                          "--max-seconds", "5", "--profile", "gpu")
    assert cfg.max_seconds == 5
    (la, wa, na), (lb, wb, nb) = filters
    assert (la, str(wa), lb, str(wb)) == ("a", "runs/a.h5", "b", "runs/b.h5")
    assert na.antialias == 3
    # b takes the profile's own settings, which a's override leaves alone
    assert nb == clip_filters.resolve(argparse.Namespace(profile="gpu", max_seconds=None, filters=["b=b.h5"]))[1][0][2]
    assert na == type(nb)(**{**nb.__dict__, "antialias": 3})


def test_a_filter_without_a_label_is_one_clear_error():
    with pytest.raises(SystemExit, match="expected LABEL=WEIGHTS"):
        _parse("out", "runs/a.h5", "--clip", "fox.mp4")
