from dataclasses import replace

import pytest

from repcompare.capture.spec import parse_model_kwargs, parse_spec
from repcompare.errors import InputError


def test_library_prefixes_and_checkpoint(tmp_path):
    ckpt = tmp_path / "simclr.pth"
    ckpt.write_bytes(b"")
    spec = parse_spec(f"torchvision:resnet50@{ckpt}")
    assert (spec.library, spec.name, spec.checkpoint) == ("torchvision", "resnet50", ckpt)
    assert str(spec) == f"torchvision:resnet50@{ckpt}"
    assert spec.short_name == "resnet50@simclr"


def test_bare_name_prefers_timm_then_torchvision_and_says_so():
    assert parse_spec("resnet18").library == "timm"
    assert parse_spec("resnet18").chosen_from_bare_name
    assert parse_spec("vit_b_16").library == "torchvision"
    assert not parse_spec("timm:resnet18").chosen_from_bare_name


def test_unknown_name_suggests_close_names():
    with pytest.raises(InputError, match="did you mean torchvision:resnet50"):
        parse_spec("torchvision:resnt50")


def test_unknown_library_and_missing_checkpoint_are_input_errors(tmp_path):
    with pytest.raises(InputError, match="unknown model library 'keras'"):
        parse_spec("keras:resnet50")
    with pytest.raises(InputError, match="does not exist"):
        parse_spec(f"timm:resnet18@{tmp_path / 'nope.pth'}")


def test_options_are_part_of_the_spec_text():
    spec = parse_spec("timm:resnet18")
    assert str(spec) == "timm:resnet18"
    with_options = replace(spec, kwargs=parse_model_kwargs("global_pool=avg"), encoder="base")
    assert str(with_options) == "timm:resnet18 [global_pool='avg', encoder=base]"
    assert with_options.short_name == "resnet18"


def test_a_spec_may_give_its_own_init_seed(tmp_path):
    spec = parse_spec("timm:resnet18#seed=3")
    assert (spec.library, spec.name, spec.init_seed) == ("timm", "resnet18", 3)
    assert str(spec) == "timm:resnet18#seed=3" and spec.short_name == "resnet18#seed=3"
    assert parse_spec(str(spec)) == spec
    assert parse_spec("resnet18#seed=0").init_seed == 0  # a bare name too
    checkpoint = tmp_path / "w.pth"
    checkpoint.write_bytes(b"x")
    with_weights = parse_spec(f"timm:resnet18#seed=2@{checkpoint}")
    assert with_weights.checkpoint == checkpoint and with_weights.init_seed == 2
    assert parse_spec("timm:resnet18").init_seed is None
    for bad in ("timm:resnet18#sed=1", "timm:resnet18#seed=-1", "timm:resnet18#"):
        with pytest.raises(InputError, match="a spec takes #seed=N"):
            parse_spec(bad)
