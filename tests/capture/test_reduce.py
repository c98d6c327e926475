import pytest
import torch

from repcompare.capture.reduce import reduce, reduced_width
from repcompare.errors import InputError


def test_each_reduction_on_maps_and_tokens():
    maps = torch.arange(2 * 3 * 2 * 2, dtype=torch.float32).reshape(2, 3, 2, 2)
    assert torch.equal(reduce(maps, "flatten"), maps.reshape(2, 12))
    assert torch.equal(reduce(maps, "avgpool"), maps.mean((2, 3)))
    tokens = torch.randn(2, 5, 4)
    assert torch.equal(reduce(tokens, "cls"), tokens[:, 0])
    assert torch.allclose(reduce(tokens, "mean", prefix_tokens=1), tokens[:, 1:].mean(1))
    assert torch.allclose(reduce(tokens, "avgpool"), tokens.mean(1))
    flat = torch.randn(2, 7)
    assert torch.equal(reduce(flat, "avgpool"), flat)


def test_widths_match_the_reductions():
    assert reduced_width((256, 56, 56), "flatten") == 802816
    assert reduced_width((256, 56, 56), "avgpool") == 256
    assert reduced_width((197, 768), "cls") == 768
    assert reduced_width((197, 768), "avgpool") == 768


def test_token_reductions_refuse_conv_maps():
    with pytest.raises(InputError, match=r"'cls' needs token outputs .* layer 'layer1\.0'"):
        reduce(torch.randn(2, 3, 4, 4), "cls", "layer1.0")
    with pytest.raises(InputError, match="unknown reduction 'max'"):
        reduce(torch.randn(2, 3), "max")
