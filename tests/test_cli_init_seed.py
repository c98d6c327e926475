"""``--init-seed``: random initialisation is seeded, recorded, and part of a file's settings."""

import json

import numpy as np

from repcompare.cli import main
from repcompare.store.file_format import FileSettings, activation_path
from repcompare.store.reader import open_activations
from tests.support.checkpoints import seeded_timm_resnet18

COMMON = ["--data", "builtin:20:32", "--image-size", "32", "--crop-pct", "1.0", "--workers", "0"]
EXTRACT = [*COMMON, "--layers", "layer1.0", "--batch-size", "10", "--dtype", "float32"]


def stored(path) -> tuple[np.ndarray, FileSettings]:
    file = open_activations(path)
    try:
        return file.handle[activation_path(0, "layer1.0")][()], file.settings
    finally:
        file.close()


def test_layers_accepts_init_seed_and_says_it(capsys):
    assert main(["layers", "timm:resnet18", "--layers", "layer1.0", "--init-seed", "7"]) == 0
    assert "init seed 7" in capsys.readouterr().err


def test_extract_uses_and_records_the_seed_and_refuses_to_resume_with_another(tmp_path, capsys):
    random_init, from_file = tmp_path / "random.h5", tmp_path / "checkpoint.h5"
    spec = seeded_timm_resnet18(tmp_path / "seed5.pth", seed=5)
    assert (
        main(["extract", "timm:resnet18", "--out", str(random_init), "--init-seed", "5", *EXTRACT])
        == 0
    )
    assert main(["extract", spec, "--out", str(from_file), *EXTRACT]) == 0
    values, settings = stored(random_init)
    reference, reference_settings = stored(from_file)
    np.testing.assert_array_equal(values, reference)
    assert settings.init_seed == 5 and reference_settings.init_seed is None
    capsys.readouterr()
    again = ["extract", "timm:resnet18", "--out", str(random_init), "--init-seed", "6", *EXTRACT]
    assert main(again) == 2
    assert "init_seed: 5 -> 6" in capsys.readouterr().err


def test_files_written_before_the_field_existed_still_load():
    values = json.loads(
        FileSettings(
            "m", "", False, "d", 1, "random", 0, ("a",), "flatten", 1, "none", 0, "t", 1, "f", "n"
        ).to_json()
    )
    del values["init_seed"]
    assert FileSettings.from_json(json.dumps(values)).init_seed is None


def test_a_spec_seed_is_that_models_own_and_two_seeds_are_two_networks(tmp_path, capsys):
    """``timm:resnet18#seed=1`` is the network ``--init-seed 1`` builds, whatever the
    command's ``--init-seed``; ``cka`` of two seeds compares two networks, not one."""
    own, flag = tmp_path / "own.h5", tmp_path / "flag.h5"
    assert main(["extract", "timm:resnet18#seed=1", "--out", str(own), *EXTRACT]) == 0
    assert main(["extract", "timm:resnet18", "--init-seed", "1", "--out", str(flag), *EXTRACT]) == 0
    np.testing.assert_array_equal(stored(own)[0], stored(flag)[0])
    assert "#seed=1" in stored(own)[1].model
    out = tmp_path / "cka"
    pair = ["timm:resnet18#seed=0", "timm:resnet18#seed=1", "--layers-a", "layer1.0,layer4.1"]
    assert main(["cka", *pair, "--out", str(out), *COMMON]) == 0
    cka = json.loads((out / "cka.json").read_text())
    assert (cka["side_a"]["label"], cka["side_b"]["label"]) == (
        "resnet18#seed=0",
        "resnet18#seed=1",
    )
    assert cka["cka"][1][1] < 0.999  # two random networks differ at the last block
