import numpy as np
import pytest
import torch
from PIL import Image

from repcompare.capture.models import DataConfig
from repcompare.data.augment import AUGMENTATIONS, augmentation, augmented_view
from repcompare.data.order import sample_order
from repcompare.data.transforms import (
    TransformOverrides,
    eval_transform,
    resolve_config,
    view_transform,
)
from repcompare.errors import InputError

CIFAR_MEAN, CIFAR_STD = (0.49, 0.48, 0.45), (0.25, 0.24, 0.26)


def test_32px_input_at_32px_with_full_crop_is_not_resampled():
    pixels = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    config = resolve_config(
        DataConfig(), TransformOverrides(32, 1.0, CIFAR_MEAN, CIFAR_STD, "bicubic")
    )
    assert config.input_size == (3, 32, 32) and config.crop_pct == 1.0
    got = eval_transform(config)(Image.fromarray(pixels))
    expected = (
        torch.from_numpy(pixels).permute(2, 0, 1) / 255 - torch.tensor(CIFAR_MEAN)[:, None, None]
    ) / torch.tensor(CIFAR_STD)[:, None, None]
    assert torch.allclose(got, expected, atol=1e-6)


def test_default_config_crops_and_view_transform_only_resizes():
    image = Image.fromarray(np.zeros((100, 80, 3), np.uint8))
    assert eval_transform(DataConfig())(image).shape == (3, 224, 224)
    assert view_transform(resolve_config(DataConfig(), TransformOverrides(64)))(image).shape == (
        3,
        64,
        64,
    )
    with pytest.raises(InputError, match=r"--crop-pct 1\.5"):
        resolve_config(DataConfig(), TransformOverrides(crop_pct=1.5))


def image() -> Image.Image:
    return Image.fromarray(np.random.default_rng(1).integers(0, 256, (48, 48, 3), dtype=np.uint8))


def test_views_depend_only_on_seed_index_and_view():
    pipeline = augmentation("simclr", 32)
    first = np.asarray(augmented_view(image(), pipeline, 5, 10, 0))
    torch.manual_seed(123)  # global state must not matter
    augmented_view(image(), pipeline, 5, 11, 0)
    again = np.asarray(augmented_view(image(), pipeline, 5, 10, 0))
    assert np.array_equal(first, again)
    assert not np.array_equal(first, np.asarray(augmented_view(image(), pipeline, 5, 10, 1)))
    assert not np.array_equal(first, np.asarray(augmented_view(image(), pipeline, 6, 10, 0)))


@pytest.mark.parametrize("name", AUGMENTATIONS)
def test_every_preset_gives_the_view_size(name):
    assert augmented_view(image(), augmentation(name, 40), 0, 0, 0).size == (40, 40)


def test_none_is_the_plain_resize_and_crop_and_unknown_is_refused():
    plain = augmentation("none", 32)
    assert np.array_equal(
        np.asarray(augmented_view(image(), plain, 0, 0, 0)),
        np.asarray(augmented_view(image(), plain, 9, 3, 1)),
    )
    with pytest.raises(InputError, match="unknown augmentation 'jpeg'"):
        augmentation("jpeg", 32)


def test_sample_order_is_a_seeded_subset_or_the_stored_order():
    order = sample_order(100, 30, seed=4)
    assert np.array_equal(order, np.random.default_rng(4).permutation(100)[:30])
    assert len(set(order.tolist())) == 30
    assert np.array_equal(sample_order(10, None, 0, "stored"), np.arange(10))
    with pytest.raises(InputError, match=r"outside 1\.\.100"):
        sample_order(100, 200, 0)
    with pytest.raises(InputError, match="unknown --order"):
        sample_order(10, None, 0, "sorted")


@pytest.mark.parametrize("input_size", [(3, 32, 32), (3, 224, 224), (3, 96, 128)])
@pytest.mark.parametrize("crop_pct", [1.0, 0.875, 0.95])
@pytest.mark.parametrize("interpolation", ["bilinear", "bicubic", "nearest"])
def test_eval_transform_is_timms_bit_for_bit(input_size, crop_pct, interpolation):
    """Written without timm (its import costs a second), the eval pipeline must still be
    timm's: worker geometry to uint8, then the batched float normalisation."""
    from timm.data import create_transform

    config = DataConfig(input_size, crop_pct, interpolation, CIFAR_MEAN, CIFAR_STD)
    timms = create_transform(
        input_size=input_size,
        interpolation=interpolation,
        mean=CIFAR_MEAN,
        std=CIFAR_STD,
        crop_pct=crop_pct,
        is_training=False,
    )
    ours = eval_transform(config)
    generator = np.random.default_rng(0)
    for shape in [(50, 70, 3), (32, 32, 3), (300, 200, 3)]:
        picture = Image.fromarray(generator.integers(0, 256, shape, dtype=np.uint8))
        expected = timms(picture)
        assert torch.equal(ours(picture), expected)
        batch = torch.stack([ours.geometry(picture)] * 2)
        assert batch.dtype == torch.uint8 and torch.equal(ours.normalise(batch)[1], expected)
