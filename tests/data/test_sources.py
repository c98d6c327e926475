import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from repcompare.data.sources import absolute_spec, open_source, source_exists
from repcompare.errors import InputError, RepcompareWarning


def png(path: Path, value: int, size=(6, 5)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((size[1], size[0], 3), value, np.uint8)).save(path)


def test_builtin_default_and_sizes():
    assert len(open_source(None)) == 1000 and open_source(None).native_size == 64
    source = open_source("builtin:30:16")
    assert len(source) == 30 and source.load(0)[0].size == (16, 16)
    with pytest.raises(InputError, match="builtin"):
        open_source("builtin:many")


def test_image_folder_with_classes_and_flat_folder(tmp_path):
    for c, cls in enumerate(["cat", "dog"]):
        for i in range(3):
            png(tmp_path / "tree" / cls / f"{i}.png", 40 * c + i)
    source = open_source(str(tmp_path / "tree"))
    assert len(source) == 6 and source.classes == ["cat", "dog"] and source.has_labels
    image, label = source.load(4)
    assert label == 1 and np.asarray(image)[0, 0, 0] == 41
    png(tmp_path / "flat" / "a.png", 7)
    flat = open_source(str(tmp_path / "flat"))
    assert not flat.has_labels and flat.load(0)[1] == -1


def test_npz_with_and_without_labels(tmp_path):
    images = np.arange(4 * 8 * 8, dtype=np.uint8).reshape(4, 8, 8, 1)
    np.savez(tmp_path / "gray.npz", images=images, labels=np.array([0, 1, 1, 0]))
    source = open_source(str(tmp_path / "gray.npz"))
    image, label = source.load(2)
    assert label == 1 and np.asarray(image).shape == (8, 8, 3) and source.native_size == 8
    np.savez(tmp_path / "plain.npz", images=np.repeat(images, 3, axis=3))
    assert not open_source(str(tmp_path / "plain.npz")).has_labels


def fake_cifar(root: Path, kind: str) -> np.ndarray:
    rng = np.random.default_rng(0)
    if kind == "cifar10":
        folder, names, key, files = (
            root / "cifar-10-batches-py",
            "label_names",
            "labels",
            ["test_batch"],
        )
        meta = "batches.meta"
    else:
        folder, names, key, files = (
            root / "cifar-100-python",
            "fine_label_names",
            "fine_labels",
            ["test"],
        )
        meta = "meta"
    folder.mkdir(parents=True)
    data = rng.integers(0, 256, (5, 3072), dtype=np.uint8)
    for name in files:
        with open(folder / name, "wb") as f:
            pickle.dump({b"data": data, key.encode(): [0, 1, 2, 1, 0]}, f)
    with open(folder / meta, "wb") as f:
        pickle.dump({names.encode(): [b"a", b"b", b"c"]}, f)
    return data


@pytest.mark.parametrize("kind", ["cifar10", "cifar100"])
def test_cifar_python_batches(tmp_path, kind):
    data = fake_cifar(tmp_path, kind)
    source = open_source(f"{kind}:{tmp_path}")
    assert len(source) == 5 and source.classes == ["a", "b", "c"] and source.native_size == 32
    image, label = source.load(3)
    assert label == 1
    assert np.array_equal(np.asarray(image), data[3].reshape(3, 32, 32).transpose(1, 2, 0))


class CreatesAFile:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_cifar_pickle_that_runs_code_is_refused(tmp_path):
    fake_cifar(tmp_path, "cifar10")
    marker = tmp_path / "pwned"
    with open(tmp_path / "cifar-10-batches-py" / "test_batch", "wb") as f:
        pickle.dump({b"data": CreatesAFile(marker)}, f)
    with pytest.raises(InputError, match="not a CIFAR python batch"):
        open_source(f"cifar10:{tmp_path}")
    assert not marker.exists()


def test_errors_name_the_problem(tmp_path):
    with pytest.raises(InputError, match="neither builtin"):
        open_source(str(tmp_path / "missing"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="is empty"):
        open_source(str(tmp_path / "empty"))
    bad = tmp_path / "bad" / "cls" / "x.png"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"not an image")
    with (
        pytest.warns(RepcompareWarning, match="not images"),
        pytest.raises(InputError, match="holds no images"),
    ):
        open_source(str(tmp_path / "bad"))
    np.savez(tmp_path / "m.npz", images=np.zeros((3, 4, 4, 3), np.uint8), labels=np.zeros(2))
    with pytest.raises(InputError, match=r"holds 3 images but labels of \w+ \(2,\)"):
        open_source(str(tmp_path / "m.npz"))
    np.savez(tmp_path / "f.npz", images=np.zeros((3, 4, 4, 3), np.float32))
    with pytest.raises(InputError, match="not \\(N, H, W, 1 or 3\\) uint8"):
        open_source(str(tmp_path / "f.npz"))
    with pytest.raises(InputError, match="is missing"):
        open_source(f"cifar10:{tmp_path}")


def test_malformed_inputs_are_one_sentence_errors(tmp_path):
    for c in ("cat", "dog"):
        (tmp_path / "tree" / c).mkdir(parents=True)
    png(tmp_path / "tree" / "cat" / "a.png", 5)
    with pytest.raises(InputError, match=r"class sub-folders without images \(dog\)"):
        open_source(str(tmp_path / "tree"))
    fake_cifar(tmp_path / "c", "cifar10")
    with open(tmp_path / "c" / "cifar-10-batches-py" / "test_batch", "wb") as f:
        pickle.dump({b"labels": [0]}, f)
    with pytest.raises(InputError, match="does not hold cifar10 python batches"):
        open_source(f"cifar10:{tmp_path / 'c'}")
    images = np.zeros((2, 4, 4, 3), np.uint8)
    for labels, message in [(np.array([0.7, 1.0]), "integer label"), (np.array([0, 3]), "outside")]:
        np.savez(tmp_path / "l.npz", images=images, labels=labels, class_names=np.array(["a", "b"]))
        with pytest.raises(InputError, match=message):
            open_source(str(tmp_path / "l.npz"))


def test_protocol_5_cifar_pickles_load(tmp_path):
    data = fake_cifar(tmp_path, "cifar10")
    batch = tmp_path / "cifar-10-batches-py" / "test_batch"
    with open(batch, "wb") as f:
        pickle.dump({b"data": data, b"labels": [0, 1, 2, 1, 0]}, f, protocol=5)
    image, label = open_source(f"cifar10:{tmp_path}").load(3)
    assert label == 1
    assert np.array_equal(np.asarray(image), data[3].reshape(3, 32, 32).transpose(1, 2, 0))


def test_files_that_are_not_images_are_skipped_with_one_warning(tmp_path):
    for cls in ("cat", "dog"):
        for i in range(2):
            png(tmp_path / cls / f"{i}.png", 10 * i)
    (tmp_path / "cat" / "notes.jpg").write_text("not an image")
    (tmp_path / "dog" / "readme.txt").write_text("not an image either")
    (tmp_path / "dog" / ".DS_Store.png").write_bytes(b"\x00\x00\x00\x01Bud1")
    with pytest.warns(RepcompareWarning, match=r"skipped 2 file\(s\) .* not images"):
        source = open_source(str(tmp_path))
    assert len(source) == 4
    assert [source.load(i)[1] for i in range(4)] == [0, 0, 1, 1]


def test_a_corrupt_real_image_names_the_file(tmp_path):
    png(tmp_path / "a" / "good.png", 1)
    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(noise).save(tmp_path / "a" / "whole.png")
    whole = (tmp_path / "a" / "whole.png").read_bytes()
    (tmp_path / "a" / "whole.png").unlink()
    (tmp_path / "a" / "cut.png").write_bytes(whole[: len(whole) // 2])
    source = open_source(str(tmp_path))
    assert len(source) == 2  # its header is fine: it is an image, not a stray file
    with pytest.raises(InputError, match=r"cut\.png' is corrupt"):
        source.load([p.name for p, _ in source.files].index("cut.png"))


def test_specs_made_absolute_and_checked_for_existence(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "imgs").mkdir()
    assert absolute_spec(None) == "builtin" and absolute_spec("builtin:8:16") == "builtin:8:16"
    assert absolute_spec("imgs") == str(tmp_path / "imgs")
    assert absolute_spec("cifar10:c10") == f"cifar10:{tmp_path / 'c10'}:test"
    assert absolute_spec("cifar100:c:train") == f"cifar100:{tmp_path / 'c'}:train"
    assert source_exists("builtin:8") and source_exists(absolute_spec("imgs"))
    assert not source_exists(absolute_spec("cifar10:c10"))


def test_a_decompression_bomb_is_refused_by_name(tmp_path, monkeypatch):
    png(tmp_path / "a" / "small.png", 1)
    png(tmp_path / "a" / "huge.png", 2, size=(64, 64))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 64 x 64 > 2 x 1000: a "bomb"
    source = open_source(str(tmp_path))
    assert len(source) == 2 and source.load(1)[0].size == (6, 5)
    with pytest.raises(InputError, match=r"huge\.png' is too large to decode safely"):
        source.load(0)


def test_npz_labels_of_any_integer_type_and_absurd_labels(tmp_path):
    images = np.zeros((3, 8, 8, 3), np.uint8)
    np.savez(tmp_path / "small.npz", images=images, labels=np.array([0, 2, 1], np.uint8))
    source = open_source(str(tmp_path / "small.npz"))
    assert source.classes == ["0", "1", "2"] and source.load(1)[1] == 2
    np.savez(tmp_path / "huge.npz", images=images, labels=np.array([0, 1, 10**12]))
    with pytest.raises(InputError, match=r"label 1000000000000.*use labels 0\.\.K-1"):
        open_source(str(tmp_path / "huge.npz"))


class _Tensors(torch.utils.data.Dataset):
    def __init__(self, images, labels):
        self.images, self.labels = images, labels

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        return self.images[i], self.labels[i]


def test_a_dataset_normalised_already_is_refused_and_one_in_0_1_is_read_exactly():
    pixels = torch.arange(3 * 4 * 4, dtype=torch.float32).reshape(1, 3, 4, 4) / 255
    exact = open_source(_Tensors(pixels, [0]))
    assert np.asarray(exact.load(0)[0]).transpose(2, 0, 1).ravel().tolist() == list(range(48))
    normalised = (pixels - 0.45) / 0.225
    with pytest.raises(InputError, match="outside \\[0, 1\\]: it looks normalised already"):
        open_source(_Tensors(normalised, [0])).load(0)
    unnumbered = open_source(_Tensors(pixels.repeat(2, 1, 1, 1), [0, 10**12]))
    with pytest.raises(InputError, match=r"use labels 0\.\.K-1"):
        assert unnumbered.classes is None
