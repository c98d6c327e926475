"""End-to-end ``repcompare extract``: values, resume after SIGKILL, view fingerprints, errors."""

import json
import os
import re
import signal
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest
import timm
import torch
import torchvision

from repcompare.cli import main
from repcompare.data.sources import open_source
from repcompare.errors import InputError
from repcompare.store.file_format import activation_path
from repcompare.store.reader import open_activations
from tests.support.numpy_reference import minibatch_cka


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """Seeded weights for a timm and a torchvision model, saved the way users save them."""
    root = tmp_path_factory.mktemp("ckpt")
    torch.manual_seed(0)
    timm_path = root / "timm_resnet18.pth"
    torch.save(timm.create_model("resnet18").state_dict(), timm_path)
    torch.manual_seed(1)
    tv_path = root / "tv_resnet18.safetensors"
    from safetensors.torch import save_file

    save_file(torchvision.models.resnet18().state_dict(), str(tv_path))
    return {"timm": timm_path, "torchvision": tv_path}


def run(*args: str) -> int:
    return main(["extract", *args])


COMMON = ["--data", "builtin:40:32", "--image-size", "32", "--crop-pct", "1.0", "--workers", "0"]


@pytest.mark.parametrize("library", ["timm", "torchvision"])
def test_file_values_equal_a_direct_forward_pass(tmp_path, checkpoints, library):
    out = tmp_path / "acts.h5"
    spec = f"{library}:resnet18@{checkpoints[library]}"
    layers = ["layer1.0", "layer3.1.bn2", "layer4.1"]
    assert (
        run(
            spec,
            "--out",
            str(out),
            *COMMON,
            "--num-samples",
            "20",
            "--batch-size",
            "8",
            "--layers",
            ",".join(layers),
            "--reduce",
            "avgpool",
        )
        == 0
    )

    model = timm.create_model("resnet18") if library == "timm" else torchvision.models.resnet18()
    if library == "timm":
        model.load_state_dict(torch.load(checkpoints["timm"], weights_only=True))
    else:
        from safetensors.torch import load_file

        model.load_state_dict(load_file(str(checkpoints["torchvision"])))
    model.eval()
    with h5py.File(out) as f:
        order = f["sample_index"][()]
        transform_text = f.attrs["transform"]
        stored = {layer: f[activation_path(0, layer)][()] for layer in layers}
    mean, std = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    transform = timm.data.create_transform(
        input_size=(3, 32, 32),
        crop_pct=1.0,
        mean=mean,
        std=std,
        is_training=False,
        interpolation="bicubic" if library == "timm" else "bilinear",
    )
    source = open_source("builtin:40:32")
    images = torch.stack([transform(source.load(int(i))[0]) for i in order])
    captured = {}
    hooks = [
        model.get_submodule(layer).register_forward_hook(
            lambda _m, _i, out, layer=layer: captured.__setitem__(layer, out.clone())
        )
        for layer in layers
    ]
    with torch.no_grad():
        model(images)
    for hook in hooks:
        hook.remove()
    assert "Normalize" in transform_text
    for layer in layers:
        reference = captured[layer].mean((2, 3)).numpy()
        assert stored[layer].dtype == np.float16
        scale = np.abs(reference).max()
        np.testing.assert_allclose(stored[layer], reference, rtol=2e-3, atol=2e-3 * scale)


def rows_done(path) -> int:
    try:
        with h5py.File(path, "r", locking=False) as f:
            return int(f["rows_done"][()])
    except (OSError, KeyError):
        return 0


def test_sigkill_then_resume_gives_the_uninterrupted_file(tmp_path, checkpoints):
    args = [
        f"timm:resnet18@{checkpoints['timm']}",
        "--data",
        "builtin:240:48",
        "--workers",
        "0",
        "--image-size",
        "48",
        "--batch-size",
        "8",
        "--layers",
        "blocks",
    ]
    partial, whole = tmp_path / "partial.h5", tmp_path / "whole.h5"
    child = subprocess.Popen(
        [sys.executable, "-m", "repcompare", "extract", *args, "--out", str(partial)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while rows_done(partial) < 16 and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    killed_at = rows_done(partial)
    assert 16 <= killed_at < 240, "the run must be killed mid-way"
    with pytest.raises(InputError, match="incomplete"):
        open_activations(partial)
    assert run(*args, "--out", str(partial)) == 0
    assert run(*args, "--out", str(whole)) == 0
    with h5py.File(partial) as a, h5py.File(whole) as b:
        assert a.attrs["complete"] and b.attrs["complete"]
        names = []
        a.visit(lambda name: names.append(name) if isinstance(a[name], h5py.Dataset) else None)
        assert len(names) == 8 + 4
        for name in names:
            assert a[name][()].tobytes() == b[name][()].tobytes(), name
        assert a.attrs["data_fingerprint"] == b.attrs["data_fingerprint"]


def fingerprint(path) -> str:
    with h5py.File(path) as f:
        return f.attrs["data_fingerprint"]


def test_same_seed_gives_identical_views_for_different_models(tmp_path, checkpoints):
    views = [
        "--augment",
        "simclr",
        "--views",
        "2",
        "--num-samples",
        "12",
        "--batch-size",
        "4",
        "--layers",
        "layer4.1",
        "--reduce",
        "avgpool",
        "--data",
        "builtin:12:32",
        "--workers",
        "0",
    ]
    files = {}
    for name, spec, seed in [
        ("timm", f"timm:resnet18@{checkpoints['timm']}", "3"),
        ("tv", f"torchvision:resnet18@{checkpoints['torchvision']}", "3"),
        ("tv_other_seed", f"torchvision:resnet18@{checkpoints['torchvision']}", "4"),
    ]:
        files[name] = tmp_path / f"{name}.h5"
        assert run(spec, "--out", str(files[name]), "--seed", seed, *views) == 0
    assert fingerprint(files["timm"]) == fingerprint(files["tv"])
    assert fingerprint(files["tv"]) != fingerprint(files["tv_other_seed"])
    with h5py.File(files["timm"]) as f:
        settings = json.loads(f.attrs["settings"])
        assert settings["views"] == 2 and settings["augment"] == "simclr"
        v0, v1 = f[activation_path(0, "layer4.1")][()], f[activation_path(1, "layer4.1")][()]
        assert not np.array_equal(v0, v1)


def test_complete_file_is_kept_and_other_settings_need_force(tmp_path, checkpoints, capsys):
    out = tmp_path / "a.h5"
    args = [
        f"timm:resnet18@{checkpoints['timm']}",
        "--out",
        str(out),
        *COMMON,
        "--num-samples",
        "8",
        "--batch-size",
        "4",
        "--layers",
        "layer4.1",
    ]
    assert run(*args) == 0
    assert run(*args) == 0
    assert "already complete" in capsys.readouterr().err
    assert run(*args, "--seed", "9") == 2
    assert "pass --force" in capsys.readouterr().err
    assert run(*args, "--seed", "9", "--force") == 0


def test_bad_data_sources_exit_2_with_one_sentence(tmp_path, checkpoints, capsys):
    spec = f"timm:resnet18@{checkpoints['timm']}"
    empty = tmp_path / "empty"
    empty.mkdir()
    corrupt = tmp_path / "corrupt" / "cats"
    corrupt.mkdir(parents=True)
    (corrupt / "broken.png").write_bytes(b"this is not a png")
    mismatched = tmp_path / "bad.npz"
    np.savez(mismatched, images=np.zeros((5, 8, 8, 3), np.uint8), labels=np.zeros(4, np.int64))
    for data, expected in [
        (empty, "empty"),
        (corrupt.parent, "broken.png"),
        (mismatched, "bad.npz"),
    ]:
        code = run(
            spec,
            "--out",
            str(tmp_path / "x.h5"),
            "--data",
            str(data),
            "--workers",
            "0",
            "--layers",
            "layer4.1",
            "--batch-size",
            "4",
            "--force",
        )
        err = capsys.readouterr().err
        assert code == 2, err
        assert re.search(expected, err) and "Traceback" not in err


@pytest.mark.parametrize(("n", "sizes"), [(65, [65]), (67, [67]), (68, [64, 4])])
def test_a_short_last_batch_joins_the_one_before_in_extract_and_cka(
    tmp_path, checkpoints, n, sizes
):
    common = [f"builtin:{n}:32", "--image-size", "32", "--crop-pct", "1.0", "--workers", "0"]
    common = ["--data", *common, "--batch-size", "64", "--reduce", "avgpool"]
    layers = ["layer3.1", "layer4.1"]
    specs = [f"{lib}:resnet18@{checkpoints[lib]}" for lib in ("timm", "torchvision")]
    files = [tmp_path / "a.h5", tmp_path / "b.h5"]
    for spec, out in zip(specs, files, strict=True):
        args = [*common, "--dtype", "float32", "--layers", ",".join(layers)]
        assert run(spec, "--out", str(out), *args) == 0
    stored = []
    for path in files:
        with h5py.File(path) as f:
            assert f["input_digest"].shape == (1, len(sizes), 32)
            stored.append([f[activation_path(0, layer)][()].astype(np.float64) for layer in layers])
    bounds = list(zip(np.cumsum(sizes) - sizes, np.cumsum(sizes), strict=True))
    split = lambda x: [x[start:stop] for start, stop in bounds]  # noqa: E731
    expected = np.array([[minibatch_cka(split(x), split(y)) for y in stored[1]] for x in stored[0]])
    on_the_fly = [*specs, *common, "--layers-a", ",".join(layers), "--layers-b", ",".join(layers)]
    for name, args in [("files", [str(f) for f in files]), ("on_the_fly", on_the_fly)]:
        out = tmp_path / name
        assert main(["cka", *args, "--out", str(out)]) == 0, name
        got = np.array(json.loads((out / "cka.json").read_text())["cka"])
        assert np.abs(got - expected).max() <= 1e-5, name
