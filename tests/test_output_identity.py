"""Every CSV, JSON, Markdown and PNG the commands write stays byte for byte what it was.

The digests in ``tests/golden/output_digests.json`` were recorded before the middle layers
were re-laid (issue 25); a refactoring that changes one number, one row or one pixel fails
here and names the file. Only what differs between two identical runs is masked first: the
temporary folder, SHA-256 values (checkpoint files differ in their headers), run times.
A deliberate change of output (or a new matplotlib) is recorded again with
``REPCOMPARE_WRITE_GOLDEN=1 uv run pytest tests/test_output_identity.py``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

import pytest

from repcompare.cli import main
from tests.support.checkpoints import seeded_torchvision_resnet18

GOLDEN = Path(__file__).parent / "golden" / "output_digests.json"
COMPARED = (".csv", ".json", ".md", ".png")
LAYERS = "layer1.0,layer2.1,layer3.1,layer4.1"
DATA = "--data builtin:48:32 --image-size 32 --crop-pct 1.0 --workers 0"
SHA256 = re.compile(rb"\b[0-9a-f]{64}\b")
SECONDS = re.compile(rb'"seconds": [0-9.e+-]+|\| run time \| [0-9.]+ s')


def _masked(path: Path, root: Path) -> bytes:
    """The file's bytes with what differs between identical runs replaced."""
    content = path.read_bytes()
    if path.suffix == ".png":
        return content
    content = content.replace(str(root).encode(), b"<root>")
    return SECONDS.sub(b"<seconds>", SHA256.sub(b"<sha256>", content))


def _digests(root: Path, folder: str) -> dict[str, str]:
    """SHA-256 of every compared file under ``root/folder``, by path relative to ``root``."""
    return {
        str(path.relative_to(root)): hashlib.sha256(_masked(path, root)).hexdigest()
        for path in sorted((root / folder).rglob("*"))
        if path.suffix in COMPARED
        and not any(part.startswith(".") for part in path.relative_to(root).parts)
        and "checkpoints" not in path.parts
    }


def _run(command: str) -> None:
    """Run one command line (its words split on spaces) and check that it succeeded."""
    assert main(command.split()) == 0, command


@pytest.fixture(scope="module")
def outputs(tmp_path_factory) -> Path:
    """Every command on two seeded ResNet-18s and a third model's file, then the demo."""
    root = tmp_path_factory.mktemp("identity")
    a, b = (seeded_torchvision_resnet18(root / f"net{seed}.pth", seed) for seed in (0, 1))
    common = f"{DATA} --batch-size 16"
    pooled = f"--reduce avgpool {common}"
    both = f"--layers-a {LAYERS} --layers-b {LAYERS}"
    for command in (
        f"extract timm:resnet18 --init-seed 2 --out {root / 'c.h5'} --layers {LAYERS} "
        f"--dtype float32 {pooled}",
        f"cka {a} {b} {both} --bootstrap 20 --out {root / 'cka'} {pooled}",
        f"cka {a} {root / 'c.h5'} --layers-a {LAYERS} --kernel rbf --rbf-sigma 0.5 "
        f"--out {root / 'cka_file'} {pooled}",
        f"cka {a} {b} {both} --measure procrustes --sample 32 --out {root / 'procrustes'} {pooled}",
        f"invariance {a} {b} --layers {LAYERS} --augment crop --augment flip --views 2 "
        f"--bootstrap 10 --out {root / 'invariance'} {common}",
        f"class-fit {a} {b} --layers {LAYERS} --knn-k 5 --bootstrap 10 "
        f"--out {root / 'class_fit'} {common}",
        f"atlas {a} {b} {root / 'c.h5'} --layers {LAYERS} --measure cka --measure rsa "
        f"--sample 32 --reference 1 --out {root / 'atlas'} {pooled}",
        f"demo --out {root / 'demo'} --images 64 --train-images 64 --epochs 1",
    ):
        _run(command)
    return root


FOLDERS = ("cka", "cka_file", "procrustes", "invariance", "class_fit", "atlas", "demo")


def test_golden_digests_cover_every_folder():
    if os.environ.get("REPCOMPARE_WRITE_GOLDEN"):
        pytest.skip("recording")
    recorded = json.loads(GOLDEN.read_text())
    assert {path.split("/")[0] for path in recorded} == set(FOLDERS)


@pytest.mark.parametrize("folder", FOLDERS)
def test_outputs_are_unchanged(outputs, folder):
    found = _digests(outputs, folder)
    if os.environ.get("REPCOMPARE_WRITE_GOLDEN"):
        recorded = json.loads(GOLDEN.read_text()) if GOLDEN.exists() else {}
        recorded = {k: v for k, v in recorded.items() if k.split("/")[0] != folder} | found
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(json.dumps(dict(sorted(recorded.items())), indent=1) + "\n")
        return
    expected = {
        k: v for k, v in json.loads(GOLDEN.read_text()).items() if k.split("/")[0] == folder
    }
    assert sorted(found) == sorted(expected), "files written differ"
    changed = [path for path in expected if found[path] != expected[path]]
    assert not changed, f"changed: {changed}"
