"""Image sources behind ``--data``: built-in, image folders, CIFAR folders, ``.npz`` arrays.

Every source gives ``len(source)`` images by index as RGB PIL images with an
integer label (-1 when the source has no labels).

    (none), builtin[:N[:SIZE]]   the procedural data set (N=1000 images of SIZE=64 px)
    cifar10:PATH[:train|test]    torchvision's local CIFAR-10 python format (test split by default)
    cifar100:PATH[:train|test]   likewise for CIFAR-100 (fine labels)
    PATH.npz                     arrays ``images`` (N,H,W,C uint8), optional ``labels``
    PATH/                        an image folder: class sub-folders (ImageFolder), or a flat
                                 folder of unlabelled images
"""

from __future__ import annotations

import os
import pickle
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Protocol

import numpy as np
from PIL import Image, UnidentifiedImageError

from repcompare.data.pixels import class_count, eight_bit_rgb
from repcompare.data.procedural import ProceduralShapes
from repcompare.errors import InputError, RepcompareWarning

CIFAR_FOLDERS = {"cifar10": "cifar-10-batches-py", "cifar100": "cifar-100-python"}
CIFAR_FILES = {
    ("cifar10", "train"): [f"data_batch_{i}" for i in range(1, 6)],
    ("cifar10", "test"): ["test_batch"],
    ("cifar100", "train"): ["train"],
    ("cifar100", "test"): ["test"],
}
CIFAR_META = {
    "cifar10": ("batches.meta", b"label_names", b"labels"),
    "cifar100": ("meta", b"fine_label_names", b"fine_labels"),
}
NUMPY_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
    ("_codecs", "encode"),
}


class ImageSource(Protocol):
    """What every data source offers."""

    classes: list[str] | None

    def __len__(self) -> int: ...

    def load(self, index: int) -> tuple[Image.Image, int]: ...

    def describe(self) -> str: ...

    @property
    def native_size(self) -> int | None: ...


class _ArraySource:
    """Images held as a uint8 array (N, H, W, 3), with labels or without."""

    def __init__(self, images: np.ndarray, labels: np.ndarray | None, classes, description):
        self.images, self.labels, self.classes = images, labels, classes
        self._description = description

    @property
    def has_labels(self) -> bool:
        return self.labels is not None

    @property
    def native_size(self) -> int | None:
        height, width = self.images.shape[1:3]
        return height if height == width else None

    def __len__(self) -> int:
        return len(self.images)

    def load(self, index: int) -> tuple[Image.Image, int]:
        label = -1 if self.labels is None else int(self.labels[index])
        return Image.fromarray(self.images[index]), label

    def describe(self) -> str:
        return self._description


class _FileSource:
    """Image files on disk, each with a label or -1."""

    def __init__(self, files: list[tuple[Path, int]], classes: list[str] | None, description):
        self.files, self.classes = files, classes
        self._description = description

    @property
    def has_labels(self) -> bool:
        return self.classes is not None

    @property
    def native_size(self) -> int | None:
        return None

    def __len__(self) -> int:
        return len(self.files)

    def load(self, index: int) -> tuple[Image.Image, int]:
        path, label = self.files[index]
        try:
            with Image.open(path) as image:
                return eight_bit_rgb(image, f"image file {str(path)!r}"), label
        except Image.DecompressionBombError as error:
            raise InputError(
                f"image file {str(path)!r} is too large to decode safely ({error}); "
                "downscale it or remove it"
            ) from None
        except (UnidentifiedImageError, OSError):
            raise InputError(
                f"image file {str(path)!r} is corrupt or not an image; remove or replace it"
            ) from None

    def describe(self) -> str:
        return self._description


class _NumpyOnly(pickle.Unpickler):
    """Unpickles plain containers and numpy arrays only; anything else is refused."""

    def find_class(self, module: str, name: str):
        if (module, name) in NUMPY_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"{module}.{name} is not allowed")


def _unpickle(path: Path) -> dict:
    try:
        with open(path, "rb") as handle:
            return _NumpyOnly(handle, encoding="bytes").load()
    except FileNotFoundError:
        raise InputError(
            f"CIFAR file {str(path)!r} is missing; point PATH at the folder that holds "
            f"{path.parent.name}/ as torchvision downloads it"
        ) from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as error:
        raise InputError(
            f"{path} is not a CIFAR python batch ({error}); it was not loaded"
        ) from None


def _cifar(kind: str, root: Path, split: str) -> _ArraySource:
    folder = root.expanduser() / CIFAR_FOLDERS[kind]
    meta_file, names_key, labels_key = CIFAR_META[kind]
    images, labels = [], []
    try:
        for name in CIFAR_FILES[(kind, split)]:
            batch = _unpickle(folder / name)
            images.append(np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
            labels.append(np.asarray(batch[labels_key], dtype=np.int64))
        classes = [c.decode() for c in _unpickle(folder / meta_file)[names_key]]
    except (KeyError, ValueError, TypeError, AttributeError) as error:
        raise InputError(
            f"{folder} does not hold {kind} python batches as torchvision writes them "
            f"({type(error).__name__}: {error}); re-download the data set"
        ) from None
    pixels = np.concatenate(images).transpose(0, 2, 3, 1)
    return _ArraySource(
        np.ascontiguousarray(pixels),
        np.concatenate(labels),
        classes,
        f"{kind}:{root}:{split} ({len(pixels)} images, {len(classes)} classes)",
    )


def _npz(path: Path) -> _ArraySource:
    try:
        with np.load(path, allow_pickle=False) as stored:
            arrays = {name: stored[name] for name in stored.files}
    except (OSError, ValueError):
        raise InputError(f"{path} is not a readable .npz file; save it with numpy.savez") from None
    if "images" not in arrays:
        raise InputError(f"{path} has no 'images' array; save images as (N, H, W, C) uint8")
    images = arrays["images"]
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[3] not in (1, 3):
        raise InputError(
            f"{path}: 'images' is {images.dtype} {images.shape}, not (N, H, W, 1 or 3) uint8"
        )
    if images.shape[3] == 1:
        images = np.repeat(images, 3, axis=3)
    labels, classes = arrays.get("labels"), None
    if labels is not None:
        if labels.shape != (len(images),) or not np.issubdtype(labels.dtype, np.integer):
            raise InputError(
                f"{path} holds {len(images)} images but labels of {labels.dtype} {labels.shape}; "
                "save one integer label per image"
            )
        labels = labels.astype(np.int64)
        if len(labels) and labels.min() < 0:
            raise InputError(f"{path} has the negative label {labels.min()}; use labels 0..K-1")
        names = arrays.get("class_names")
        count = class_count(labels, str(path))
        classes = [str(n) for n in names] if names is not None else [str(i) for i in range(count)]
        if count > len(classes):
            raise InputError(
                f"{path} has labels outside 0..{len(classes) - 1}; labels index class_names"
            )
    labelled = "unlabelled" if classes is None else f"{len(classes)} classes"
    return _ArraySource(images, labels, classes, f"{path} ({len(images)} images, {labelled})")


def _is_image(path: Path) -> bool:
    """Whether PIL recognises ``path``'s header as an image (the pixels are not decoded)."""
    try:
        with Image.open(path):
            return True
    except Image.DecompressionBombError:
        return True  # an image, refused by name when it is loaded
    except (UnidentifiedImageError, OSError):
        return False


def _only_images(files: list[tuple[Path, int]], folder: Path) -> list[tuple[Path, int]]:
    """``files`` without those that are not images (a text file named .jpg), with a warning.

    Headers are read before any work so that the sample set is fixed up front; a
    real image whose pixels turn out corrupt stops the run naming the file.
    """
    with ThreadPoolExecutor(max_workers=8) as pool:
        keep = list(pool.map(_is_image, (f for f, _ in files)))
    skipped = [f.name for (f, _), ok in zip(files, keep, strict=True) if not ok]
    if skipped:
        shown = ", ".join(skipped[:3]) + (", ..." if len(skipped) > 3 else "")
        warnings.warn(
            f"skipped {len(skipped)} file(s) in {folder} that are not images ({shown})",
            RepcompareWarning,
            stacklevel=3,
        )
    return [item for item, ok in zip(files, keep, strict=True) if ok]


def _image_files(folder: Path, extensions: tuple[str, ...]) -> list[Path]:
    """The image files under ``folder`` (its sub-folders too), sorted; linked folders are not
    entered, so a walk never leaves ``folder`` or loops back into it."""
    found = []
    for root, _, names in os.walk(folder, followlinks=False):
        found += [Path(root, n) for n in names if n.lower().endswith(extensions)]
    return sorted(found)


def _linked_folders(folder: Path) -> list[Path]:
    """The symbolic links to folders anywhere under ``folder`` (not followed)."""
    return [
        Path(root, name)
        for root, dirs, _ in os.walk(folder, followlinks=False)
        for name in dirs
        if Path(root, name).is_symlink()
    ]


def _folder(path: Path):
    from torchvision.datasets.folder import IMG_EXTENSIONS

    linked = _linked_folders(path)
    if linked:
        shown = ", ".join(str(p.relative_to(path)) for p in linked[:3])
        warnings.warn(
            f"did not follow {len(linked)} linked folder(s) in {path} ({shown}"
            f"{', ...' if len(linked) > 3 else ''}); copy their images in to include them",
            RepcompareWarning,
            stacklevel=2,
        )
    subfolders = sorted(p for p in path.iterdir() if p.is_dir() and not p.is_symlink())
    if subfolders:
        classes = [p.name for p in subfolders]
        files = [
            (f, label)
            for label, sub in enumerate(subfolders)
            for f in _image_files(sub, IMG_EXTENSIONS)
        ]
        empty = [p.name for p in subfolders if not _image_files(p, IMG_EXTENSIONS)]
        if empty:
            raise InputError(
                f"image folder {str(path)!r} has class sub-folders without images "
                f"({', '.join(empty[:3])}); remove the empty class folders"
            )
        kind = f"{len(classes)} classes"
    else:
        files = sorted((p, -1) for p in path.iterdir() if p.suffix.lower() in IMG_EXTENSIONS)
        classes, kind = None, "unlabelled"
    files = _only_images(files, path)
    if not files:
        raise InputError(
            f"image folder {str(path)!r} is empty: it holds no images "
            f"({', '.join(IMG_EXTENSIONS[:4])}, ...) directly or in class sub-folders"
        )
    return _FileSource(files, classes, f"imagefolder:{path} ({len(files)} images, {kind})")


def _cifar_root_and_split(rest: str) -> tuple[str, str]:
    """``PATH[:train|test]`` of a cifar spec as (PATH, split), the test split by default."""
    if rest.endswith((":train", ":test")):
        root, _, split = rest.rpartition(":")
        return root, split
    return rest, "test"


def absolute_spec(spec) -> str:
    """``spec`` with its path made absolute (``builtin`` when None), so that it names the same
    images from any working directory; builtin specs are returned as they are, a Dataset
    given in Python as its description."""
    if not isinstance(spec, (str, type(None))):
        return open_source(spec).describe()
    if spec is None or spec == "builtin" or spec.startswith("builtin:"):
        return spec or "builtin"
    kind, sep, rest = spec.partition(":")
    if sep and kind in CIFAR_FOLDERS:
        root, split = _cifar_root_and_split(rest)
        return f"{kind}:{Path(root).expanduser().resolve()}:{split}"
    return str(Path(spec).expanduser().resolve())


def source_exists(spec: str) -> bool:
    """Whether the files behind ``spec`` are there (builtin always is)."""
    if spec == "builtin" or spec.startswith("builtin:"):
        return True
    kind, sep, rest = spec.partition(":")
    if sep and kind in CIFAR_FOLDERS:
        return Path(_cifar_root_and_split(rest)[0]).expanduser().exists()
    return Path(spec).expanduser().exists()


def open_source(spec) -> ImageSource:
    """The data source named by ``--data`` (see module docstring), or a torch Dataset or
    DataLoader given in Python (``repcompare.data.dataset``)."""
    if not isinstance(spec, (str, type(None))):
        from repcompare.data.dataset import DatasetSource

        return DatasetSource(spec)
    if spec is None or spec == "builtin" or spec.startswith("builtin:"):
        parts = (spec or "builtin").split(":")[1:]
        try:
            numbers = [int(p) for p in parts]
        except ValueError:
            numbers = []
        if len(numbers) != len(parts) or len(parts) > 2:
            raise InputError(f"--data {spec!r} is not builtin[:N[:SIZE]] with integers N and SIZE")
        return ProceduralShapes(*numbers)
    kind, sep, rest = spec.partition(":")
    if sep and kind in CIFAR_FOLDERS:
        root, split = _cifar_root_and_split(rest)
        return _cifar(kind, Path(root), split)
    path = Path(spec).expanduser()
    if not path.exists():
        raise InputError(
            f"--data {spec!r} is neither builtin, cifar10:PATH, cifar100:PATH nor an existing "
            "folder or .npz file"
        )
    if path.suffix == ".npz":
        return _npz(path)
    if path.is_dir():
        return _folder(path)
    raise InputError(f"--data {spec!r} is a file but not a .npz; give an image folder or .npz")
