import numpy as np
import pytest
import torch

from repcompare.capture.layout import Layout
from repcompare.capture.reduce import pool, pooled_width, reduce, reduced_width
from repcompare.errors import InputError

NCHW, NHWC, FLAT = Layout("NCHW"), Layout("NHWC"), Layout("flat")
CLS_REG = Layout("tokens", prefix_tokens=2, class_token=True)
REG_ONLY = Layout("tokens", prefix_tokens=1)


def test_each_reduction_follows_the_layout():
    maps = torch.randn(2, 3, 4, 5)
    assert torch.equal(reduce(maps, "flatten", NCHW), maps.reshape(2, 60))
    assert torch.equal(reduce(maps, "avgpool", NCHW), maps.mean((2, 3)))
    channels_last = maps.permute(0, 2, 3, 1)
    assert torch.allclose(reduce(channels_last, "avgpool", NHWC), maps.mean((2, 3)), atol=1e-6)
    assert torch.allclose(
        reduce(maps.flatten(2), "avgpool", Layout("NCL")), maps.mean((2, 3)), atol=1e-6
    )
    tokens = torch.randn(2, 6, 4)
    assert torch.equal(reduce(tokens, "cls", CLS_REG), tokens[:, 0])
    assert torch.allclose(reduce(tokens, "mean", CLS_REG), tokens[:, 2:].mean(1))
    assert torch.allclose(reduce(tokens, "mean", Layout("tokens")), tokens.mean(1))
    assert torch.allclose(reduce(tokens, "avgpool", REG_ONLY), tokens.mean(1))
    flat = torch.randn(2, 7)
    assert torch.equal(reduce(flat, "avgpool", FLAT), flat)


def test_widths_match_the_reductions():
    assert reduced_width((256, 56, 56), "flatten", NCHW) == 802816
    assert reduced_width((256, 56, 56), "avgpool", NCHW) == 256
    assert reduced_width((56, 56, 96), "avgpool", NHWC) == 96
    assert reduced_width((197, 768), "cls", CLS_REG) == 768
    assert reduced_width((197, 768), "avgpool", CLS_REG) == 768


def test_unknown_layouts_and_missing_tokens_are_input_errors():
    with pytest.raises(
        InputError, match=r"--reduce cls needs token outputs .* layer 'layer1\.0' is NCHW"
    ):
        reduce(torch.randn(2, 3, 4, 4), "cls", NCHW, "layer1.0")
    with pytest.raises(InputError, match=r"layer 'x' \(shape \(3, 4, 4\)\).*--reduce flatten"):
        reduce(torch.randn(2, 3, 4, 4), "avgpool", Layout(), "x")
    with pytest.raises(InputError, match="layer 'norm' has no class token"):
        reduce(torch.randn(2, 5, 4), "cls", REG_ONLY, "norm")
    with pytest.raises(InputError, match="unknown reduction 'max'"):
        reduce(torch.randn(2, 3), "max", FLAT)
    assert torch.equal(reduce(x := torch.randn(2, 3, 4, 4), "flatten", Layout()), x.flatten(1))


def test_class_fit_pooling_of_flattened_layers_follows_the_layout():
    maps = torch.randn(3, 4, 5, 6)
    channels_last = maps.permute(0, 2, 3, 1)
    stored = channels_last.flatten(1)
    assert torch.allclose(pool(stored, (5, 6, 4), "flatten", NHWC), maps.mean((2, 3)), atol=1e-6)
    assert pooled_width((5, 6, 4), "flatten", NHWC) == 4
    with pytest.raises(InputError, match="extract the file again"):
        pool(stored, (5, 6, 4), "flatten", None, "stage")
    assert torch.equal(pool(x := torch.randn(3, 4), (4,), "flatten", None), x)
    assert pooled_width((5, 6, 4), "avgpool", None) == 5  # an old file: as it was reduced


def test_tokens_are_rows_of_patch_positions_in_row_major_order():
    from repcompare.capture.reduce import centre_position, sample_token_rows, token_positions

    tokens = torch.randn(2, 6, 4)  # 2 prefix tokens, 4 patches of a 2 x 2 grid
    assert torch.equal(reduce(tokens, "tokens", CLS_REG), tokens[:, 2:].reshape(8, 4))
    maps = torch.randn(2, 3, 4, 5)
    expected = maps.permute(0, 2, 3, 1).reshape(40, 3)  # row i * 20 + h * 5 + w
    assert torch.equal(reduce(maps, "tokens", NCHW), expected)
    assert torch.equal(reduce(maps.permute(0, 2, 3, 1), "tokens", NHWC), expected)
    rows = torch.tensor([0, 7, 39])
    assert torch.equal(reduce(maps, "tokens", NCHW, rows=rows), expected[rows])
    assert token_positions((197, 768), CLS_REG) == 195
    assert token_positions((3, 4, 5), NCHW) == 20 and reduced_width((3, 4, 5), "tokens", NCHW) == 3
    assert centre_position((3, 4, 5), NCHW) == 2 * 5 + 2
    assert centre_position((18, 8), CLS_REG) == 2 * 4 + 2  # 16 patches: a 4 x 4 grid
    drawn = sample_token_rows(8, 16, 10, seed=1, batch=3)
    reference = np.sort(np.random.default_rng([1, 3]).choice(128, size=10, replace=False))
    assert np.array_equal(drawn.numpy(), reference)
    assert not torch.equal(drawn, sample_token_rows(8, 16, 10, seed=1, batch=4))
    assert torch.equal(sample_token_rows(2, 3, 10, seed=1, batch=3), torch.arange(6))
    with pytest.raises(InputError, match="layer 'head' is one vector per image"):
        reduced_width((10,), "tokens", FLAT, "head")
