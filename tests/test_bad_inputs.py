"""The bad-input catalogue: every case through the real command line, each checked for its exit
code (2 bad input, 1 failure while running), one sentence naming the thing that is wrong, no
traceback, and nothing left marked complete.

docs/security-and-reliability.md lists these cases as a table; faults (disk full, signals,
concurrent processes) have their own tests beside the store and the CLI.
"""

from __future__ import annotations

import pickle
import re
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
import torchvision
from PIL import Image

from repcompare.cli import main

# about 2 minutes on 2 cores: run by .ci/run with the other slow tests
pytestmark = pytest.mark.slow

MODEL = "torchvision:resnet18"
SMALL = ["--image-size", "32", "--workers", "0", "--batch-size", "16"]
DATA = ["--data", "builtin:32:32", *SMALL]


@dataclass(frozen=True)
class Case:
    """argv (``{name}`` refers to a prepared file), the exit code and words the sentence holds."""

    area: str
    what: str
    argv: tuple[str, ...]
    code: int
    says: tuple[str, ...]


def case(area: str, what: str, argv: str, code: int, *says: str) -> Case:
    return Case(area, what, tuple(argv.split()), code, says)


CASES = [
    # models and checkpoints
    case("model", "misspelt model", "layers timm:resnet5o", 2, "no model named", "did you mean"),
    case("model", "unknown library", "layers keras:resnet50", 2, "unknown model library"),
    case("model", "spec without a name", "layers @{good_ckpt}", 2, "needs a name"),
    case("model", "missing checkpoint", "layers timm:resnet18@/no/such.pth", 2, "does not exist"),
    case("model", "zero-byte checkpoint", f"layers {MODEL}@{{empty_ckpt}}", 2, "empty_ckpt"),
    case("model", "code-running pickle", f"layers {MODEL}@{{evil_ckpt}}", 2, "arbitrary code"),
    case("model", "truncated checkpoint", f"layers {MODEL}@{{cut_ckpt}}", 2, "cut_ckpt"),
    case("model", "broken safetensors", f"layers {MODEL}@{{bad_st}}", 2, "safetensors"),
    case(
        "model", "other architecture", "layers torchvision:resnet34@{good_ckpt}", 2, "does not fit"
    ),
    case("model", "no tensors inside", f"layers {MODEL}@{{text_ckpt}}", 2, "no state dict"),
    case(
        "model",
        "NaN weights (a diverged run)",
        f"cka {MODEL}@{{nan_ckpt}} timm:resnet18 --out {{out_dir}} " + " ".join(DATA),
        2,
        "holds NaN or Inf in 1 tensor(s) (layer2.0.conv1.weight)",
    ),
    case(
        "model",
        "checkpoint and --pretrained",
        f"layers {MODEL}@{{good_ckpt}} --pretrained",
        2,
        "one or the other",
    ),
    case("model", "init seed not a number", f"layers {MODEL} --init-seed x", 2),
    case("model", "negative init seed", f"layers {MODEL} --init-seed -1", 2, "--init-seed -1"),
    case("model", "nothing after '@'", f"layers {MODEL}@", 2, "after '@'", "is empty"),
    case("model", "unknown tracer", f"layers {MODEL} --tracer jit", 2, "unknown tracer"),
    # layer selection
    case("layers", "unknown layer", f"layers {MODEL} --layers layer9", 2, "no layer", "layer"),
    case("layers", "pattern matching nothing", f"layers {MODEL} --layers foo*", 2, "matches no"),
    case("layers", "empty selection", f"layers {MODEL} --layers ,", 2, "no layers were selected"),
    case("layers", "unknown reduction", f"extract {MODEL} --out {{new_h5}} --reduce max", 2, "max"),
    case(
        "layers",
        "token reduction of a conv map",
        f"extract {MODEL} --out {{new_h5}} --reduce cls --layers layer1.0 {' '.join(DATA)}",
        2,
        "layer1.0",
    ),
    case(
        "layers",
        "layer not stored in a file",
        "cka {good_h5} {good_h5} --layers-a nope --out {out_dir}",
        2,
        "stores no layer",
    ),
    case(
        "layers",
        "unknown layer of side B",
        f"cka {MODEL} timm:resnet18 --layers-b layer9 --out {{out_dir}} {' '.join(DATA)}",
        2,
        "layer9",
    ),
    # data sources
    case("data", "negative samples", f"extract {MODEL} --out {{new_h5}} --num-samples -5", 2),
    case("data", "missing path", f"extract {MODEL} --out {{new_h5}} --data /no/imgs", 2, "neither"),
    case("data", "bad builtin", f"extract {MODEL} --out {{new_h5}} --data builtin:x", 2, "builtin"),
    case(
        "data", "empty folder", f"extract {MODEL} --out {{new_h5}} --data {{empty_dir}}", 2, "empty"
    ),
    case(
        "data",
        "folder of non-images",
        f"extract {MODEL} --out {{new_h5}} --data {{text_dir}}",
        2,
        "holds no images",
    ),
    case("data", "not a .npz", f"extract {MODEL} --out {{new_h5}} --data {{notes}}", 2, ".npz"),
    case(
        "data", "npz without images", f"extract {MODEL} --out {{new_h5}} --data {{no_img_npz}}", 2
    ),
    case("data", "float npz", f"extract {MODEL} --out {{new_h5}} --data {{float_npz}}", 2, "uint8"),
    case("data", "npz label count", f"extract {MODEL} --out {{new_h5}} --data {{lab_npz}}", 2),
    case(
        "data",
        "missing cifar",
        f"extract {MODEL} --out {{new_h5}} --data cifar10:/no/c",
        2,
        "cifar",
    ),
    case(
        "data",
        "code-running cifar pickle",
        f"extract {MODEL} --out {{new_h5}} --data cifar10:{{evil_cifar}}",
        2,
        "not a CIFAR python batch",
    ),
    case(
        "data",
        "class-fit without labels",
        f"class-fit {MODEL} --out {{out_dir}} --data {{flat_dir}} {' '.join(SMALL)}",
        2,
        "label",
    ),
    case("data", "zero samples", f"extract {MODEL} --out {{new_h5}} --num-samples 0", 2),
    case(
        "data",
        "a label of 10**12",
        f"extract {MODEL} --out {{new_h5}} --data {{huge_label_npz}}",
        2,
        "use labels 0..K-1",
    ),
    case(
        "data",
        "32-bit float image file",
        f"extract {MODEL} --out {{new_h5}} --data {{float_tiff_dir}} {' '.join(SMALL)}",
        2,
        "floating-point pixels",
    ),
    # HDF5 files
    case("hdf5", "missing file", "cka /no/a.h5 /no/b.h5 --out {out_dir}", 2, "does not exist"),
    case("hdf5", "text named .h5", "cka {text_h5} {good_h5} --out {out_dir}", 2, "text_h5"),
    case(
        "hdf5", "foreign HDF5", "cka {foreign_h5} {good_h5} --out {out_dir}", 2, "not a repcompare"
    ),
    case("hdf5", "incomplete file", "cka {partial_h5} {good_h5} --out {out_dir}", 2, "incomplete"),
    case(
        "hdf5",
        "marked complete by hand",
        "cka {forged_h5} {good_h5} --out {out_dir}",
        2,
        "completion mark does not match",
        "--force",
    ),
    case(
        "hdf5",
        "a layer's dataset deleted",
        "cka {deleted_h5} {good_h5} --out {out_dir}",
        2,
        "no dataset /activations/view0/layer4.1",
    ),
    case(
        "hdf5",
        "a layer's dataset truncated",
        "cka {short_h5} {good_h5} --out {out_dir}",
        2,
        "/activations/view0/layer2.0 has 8 rows, not 32",
    ),
    case(
        "hdf5",
        "settings attribute not JSON",
        "cka {bad_settings_h5} {good_h5} --out {out_dir}",
        2,
        "'settings' attribute",
    ),
    case(
        "hdf5",
        "files of other samples",
        "cka {good_h5} {other_h5} --out {out_dir}",
        2,
        "samples",
    ),
    case(
        "hdf5",
        "invariance of a one-view file",
        "invariance {good_h5} --out {out_dir}",
        2,
        "views",
    ),
    case(
        "hdf5",
        "other settings at --out",
        f"extract {MODEL} --out {{good_h5}} --layers layer1.0 {' '.join(DATA)}",
        2,
        "--force",
    ),
    case(
        "hdf5",
        "foreign file at --out",
        f"extract {MODEL} --out {{foreign_h5}} {' '.join(DATA)}",
        2,
        "--force",
    ),
    # option values
    case("options", "batch too small", f"extract {MODEL} --out {{new_h5}} --batch-size 2", 2, "2"),
    case("options", "batch not a number", f"extract {MODEL} --out {{new_h5}} --batch-size x", 2),
    case("options", "unknown device", f"extract {MODEL} --out {{new_h5}} --device tpu", 2, "tpu"),
    case("options", "unknown dtype", f"extract {MODEL} --out {{new_h5}} --dtype f64", 2, "--dtype"),
    case(
        "options",
        "unknown compression",
        f"extract {MODEL} --out {{new_h5}} --compression zip",
        2,
        "--compression",
    ),
    case(
        "options",
        "views without augmentation",
        f"extract {MODEL} --out {{new_h5}} --views 3 {' '.join(DATA)}",
        2,
        "--augment",
    ),
    case(
        "options",
        "unknown augmentation",
        f"invariance {MODEL} --augment swirl --out {{out_dir}} {' '.join(DATA)}",
        2,
        "swirl",
    ),
    case(
        "options",
        "mean of two numbers",
        f"extract {MODEL} --out {{new_h5}} --mean 0.5,0.5",
        2,
        "--mean",
    ),
    case(
        "options",
        "unknown interpolation",
        f"extract {MODEL} --out {{new_h5}} --interpolation cubic9 {' '.join(DATA)}",
        2,
        "cubic9",
    ),
    case(
        "options",
        "unknown order",
        f"extract {MODEL} --out {{new_h5}} --order sideways {' '.join(DATA)}",
        2,
        "sideways",
    ),
    case(
        "options",
        "unknown estimator",
        "cka {good_h5} {good_h5} --estimator magic --out {out_dir}",
        2,
        "magic",
    ),
    case(
        "options",
        "unknown kernel",
        "cka {good_h5} {good_h5} --kernel cosine --out {out_dir}",
        2,
        "cosine",
    ),
    case(
        "options",
        "bootstrap over one batch",
        "cka {good_h5} {good_h5} --bootstrap 10 --batch-size 64 --out {out_dir}",
        2,
        "2 batches",
    ),
    case(
        "options",
        "same model twice",
        f"invariance {MODEL} {MODEL} --out {{out_dir}} {' '.join(DATA)}",
        2,
        "more than once",
    ),
    case(
        "options",
        "kNN with no neighbours",
        f"class-fit {MODEL} --knn-k 0 --out {{out_dir}} {' '.join(DATA)}",
        2,
        "--knn-k",
    ),
    case(
        "options",
        "kNN with more neighbours than training images",
        f"class-fit {MODEL} --knn-k 30 --out {{out_dir}} {' '.join(DATA)}",
        2,
        "--knn-k 30 needs more training images than neighbours",
    ),
    case(
        "options",
        "test fraction above 1",
        f"class-fit {MODEL} --test-fraction 1.5 --out {{out_dir}} {' '.join(DATA)}",
        2,
        "--test-fraction",
    ),
    case(
        "options",
        "invariance with one view",
        f"invariance {MODEL} --views 1 --out {{out_dir}} {' '.join(DATA)}",
        2,
        "--views",
    ),
    case(
        "options",
        "RBF bandwidth 0",
        "cka {good_h5} {good_h5} --kernel rbf --rbf-sigma 0 --out {out_dir}",
        2,
        "--rbf-sigma 0",
    ),
    case(
        "options",
        "negative RBF bandwidth",
        "cka {good_h5} {good_h5} --kernel rbf --rbf-sigma -1 --out {out_dir}",
        2,
        "--rbf-sigma -1",
    ),
    case(
        "options",
        "negative workers",
        f"extract {MODEL} --out {{new_h5}} --workers -1",
        2,
        "--workers -1",
    ),
    case("options", "negative seed", f"extract {MODEL} --out {{new_h5}} --seed -1", 2, "--seed -1"),
    case(
        "options",
        "absurd image size",
        f"extract {MODEL} --out {{new_h5}} --image-size 99999",
        2,
        "--image-size 99999",
    ),
    case(
        "options",
        "a hundred thousand views",
        f"invariance {MODEL} --views 100000 --out {{out_dir}} {' '.join(DATA)}",
        2,
        "--views 100000 must lie between 1 and 64",
    ),
    case("options", "zero std", f"extract {MODEL} --out {{new_h5}} --std 0,0,0", 2, "--std"),
    case(
        "options",
        "empty fixed sample",
        "cka {good_h5} {good_h5} --measure svcca --sample 0 --out {out_dir}",
        2,
        "--sample 0",
    ),
    case(
        "options",
        "negative bootstrap",
        "cka {good_h5} {good_h5} --bootstrap -1 --out {out_dir}",
        2,
        "--bootstrap -1",
    ),
    case(
        "options",
        "CCA on fewer images than features",
        f"cka {MODEL} timm:resnet18 --measure svcca --num-samples 16 --out {{out_dir}} "
        + " ".join(DATA),
        2,
        "svcca is 1 for any two layers on 16 images",
    ),
    case(
        "options",
        "atlas: PWCCA on fewer images than features",
        f"atlas {MODEL} timm:resnet18 --layers layer4.1 --measure cka --measure pwcca "
        f"--out {{out_dir}} " + " ".join(DATA),
        2,
        "pwcca is 1 for any two layers on 32 images",
    ),
    case(
        "options",
        "mutual k-NN on 10 images",
        f"cka {MODEL} timm:resnet18 --measure mutual-knn --num-samples 10 --out {{out_dir}} "
        + " ".join(DATA),
        2,
        "needs more than 10 images",
    ),
    # output paths
    case(
        "output", "a file as --out folder", "cka {good_h5} {good_h5} --out {notes}", 2, "is a file"
    ),
    case(
        "output",
        "--out under a file",
        "cka {good_h5} {good_h5} --out {notes}/results",
        2,
        "cannot write",
    ),
    case(
        "output",
        "extract --out under a file",
        f"extract {MODEL} --out {{notes}}/a.h5 {' '.join(DATA)}",
        2,
        "--out",
    ),
    case(
        "output",
        "extract --out is a folder",
        f"extract {MODEL} --out {{empty_dir}} {' '.join(DATA)}",
        2,
        "--out",
    ),
    case(
        "output",
        "extract --out is a folder, with --force",
        f"extract {MODEL} --out {{empty_dir}} --force {' '.join(DATA)}",
        2,
        "--out",
    ),
]


KEYS = {key for c in CASES for arg in c.argv for key in re.findall(r"{(\w+)}", arg)}


class _Evil:
    def __reduce__(self):
        return (print, ("this pickle ran code",))


def _png(path: Path, value: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((8, 8, 3), value, np.uint8)).save(path)


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, str]:
    """Every prepared file a case may name, by placeholder."""
    root = tmp_path_factory.mktemp("bad")
    names = {
        "good_ckpt": "good_ckpt.pth",
        "bad_st": "bad_st.safetensors",
        "no_img_npz": "no_img.npz",
        "float_npz": "float.npz",
        "lab_npz": "labels.npz",
        "huge_label_npz": "huge_label.npz",
        "bad_settings_h5": "bad_settings.h5",
        "short_h5": "short.h5",
        "deleted_h5": "deleted.h5",
        "forged_h5": "forged.h5",
        "good_h5": "good.h5",
        "other_h5": "other.h5",
        "partial_h5": "partial.h5",
        "text_h5": "text_h5.h5",
        "foreign_h5": "foreign.h5",
        "new_h5": "never_written.h5",
        "out_dir": "results",
    }
    paths = {key: root / names.get(key, key) for key in {*names, *KEYS}}

    torch.manual_seed(0)
    torch.save(torchvision.models.resnet18().state_dict(), paths["good_ckpt"])
    diverged = torchvision.models.resnet18().state_dict()
    diverged["layer2.0.conv1.weight"][0, 0, 0, 0] = float("nan")
    torch.save(diverged, paths["nan_ckpt"])
    paths["empty_ckpt"].write_bytes(b"")
    torch.save({"w": _Evil()}, paths["evil_ckpt"])
    whole = paths["good_ckpt"].read_bytes()
    paths["cut_ckpt"].write_bytes(whole[: len(whole) // 3])
    paths["bad_st"].write_bytes(b"\x10\x00not safetensors")
    torch.save({"note": "no tensors", "epoch": 3}, paths["text_ckpt"])
    paths["empty_dir"].mkdir()
    paths["text_dir"].mkdir()
    (paths["text_dir"] / "a.png").write_text("not a picture")
    for i in range(6):
        _png(paths["flat_dir"] / f"{i}.png", 20 * i)
    paths["notes"].write_text("notes")
    np.savez(paths["no_img_npz"], pixels=np.zeros((4, 8, 8, 3), np.uint8))
    np.savez(paths["float_npz"], images=np.zeros((4, 8, 8, 3), np.float32))
    np.savez(paths["lab_npz"], images=np.zeros((4, 8, 8, 3), np.uint8), labels=np.zeros(3))
    huge = np.array([0, 1, 2, 10**12])
    np.savez(paths["huge_label_npz"], images=np.zeros((4, 8, 8, 3), np.uint8), labels=huge)
    paths["float_tiff_dir"].mkdir()
    Image.fromarray(np.full((8, 8), 3.5, np.float32), mode="F").save(
        paths["float_tiff_dir"] / "a.tiff"
    )
    cifar = paths["evil_cifar"] / "cifar-10-batches-py"
    cifar.mkdir(parents=True)
    for name in ("test_batch", "batches.meta"):
        with open(cifar / name, "wb") as f:
            pickle.dump({b"data": _Evil()}, f)
    extract = ["extract", MODEL, "--layers", "layer2.0,layer4.1", "--reduce", "avgpool", *DATA]
    assert main([*extract, "--out", str(paths["good_h5"])]) == 0
    assert main([*extract, "--out", str(paths["other_h5"]), "--seed", "1"]) == 0
    paths["partial_h5"].write_bytes(paths["good_h5"].read_bytes())
    with h5py.File(paths["partial_h5"], "r+") as f:  # as a run interrupted after 16 rows
        f.attrs["complete"] = False
        f.attrs["completion_sha256"] = np.bytes_("0" * 64)
        f["rows_done"][()] = 16
    paths["forged_h5"].write_bytes(paths["partial_h5"].read_bytes())
    with h5py.File(paths["forged_h5"], "r+") as f:  # an incomplete file "completed" by hand
        f.attrs["complete"] = True
        f["rows_done"][()] = 32
    for damaged in ("deleted_h5", "short_h5", "bad_settings_h5"):
        paths[damaged].write_bytes(paths["good_h5"].read_bytes())
    with h5py.File(paths["deleted_h5"], "r+") as f:
        del f["activations/view0/layer4.1"]
    with h5py.File(paths["short_h5"], "r+") as f:
        rows = f["activations/view0/layer2.0"][:8]
        del f["activations/view0/layer2.0"]
        f["activations/view0/layer2.0"] = rows
    with h5py.File(paths["bad_settings_h5"], "r+") as f:
        f.attrs["settings"] = "{not json"
    paths["text_h5"].write_text("not HDF5")
    with h5py.File(paths["foreign_h5"], "w") as f:
        f["x"] = np.zeros(3)
    return {key: str(p) for key, p in paths.items()}


@pytest.mark.parametrize("case", CASES, ids=[f"{c.area}: {c.what}" for c in CASES])
def test_bad_input_is_one_sentence_with_its_exit_code(case: Case, files, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    argv = [arg.format(**files) for arg in case.argv]
    assert main(argv) == case.code
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    problem = [line for line in err.splitlines() if line.startswith("error:")]
    usage = "Usage:" in err  # a Click usage error: its own box, naming the option
    assert usage or len(problem) == 1, err
    sentence = err if usage else problem[0]
    for word in case.says:
        assert word.format(**files) in sentence, sentence
    new_h5 = Path(files["new_h5"])
    if new_h5.exists():
        with h5py.File(new_h5) as f:
            assert not f.attrs.get("complete"), "a failed run marked its file complete"


def test_the_catalogue_covers_every_area():
    assert len(CASES) >= 60
    assert {c.area for c in CASES} == {"model", "layers", "data", "hdf5", "options", "output"}


def test_every_case_is_a_row_of_the_documented_catalogue():
    page = (Path(__file__).parents[1] / "docs" / "security-and-reliability.md").read_text()
    for c in CASES:
        assert f"| {c.area} | {c.what} | {c.code} |" in page, c.what
