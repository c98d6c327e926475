import urllib.error

import pytest
import torch

from repcompare.capture.models import load_model
from repcompare.capture.spec import parse_spec
from repcompare.errors import InputError


def test_checkpoint_in_the_spec_is_loaded_with_provenance(tmp_path):
    torch.manual_seed(5)
    source = load_model(parse_spec("timm:resnet18")).module
    path = tmp_path / "r18.pth"
    torch.save({"model": source.state_dict()}, path)
    loaded = load_model(parse_spec(f"timm:resnet18@{path}"))
    for key, value in source.state_dict().items():
        assert torch.equal(loaded.module.state_dict()[key], value), key
    assert loaded.load_report.container == ("model",)
    assert len(loaded.checkpoint_sha256) == 64
    assert not loaded.module.training


def test_data_config_comes_from_the_library():
    vit = load_model(parse_spec("timm:test_vit"))
    assert vit.data_config.input_size == (3, 160, 160)
    assert vit.data_config.mean == (0.5, 0.5, 0.5)
    assert vit.prefix_tokens == 1
    tv = load_model(parse_spec("torchvision:resnet18"))
    assert tv.data_config.input_size == (3, 224, 224)
    assert tv.data_config.crop_pct == pytest.approx(224 / 256)


def test_offline_timm_pretrained_fails_with_one_clear_sentence(monkeypatch):
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    with pytest.raises(InputError, match=r"could not fetch the published weights of timm:resnet18"):
        load_model(parse_spec("timm:resnet18"), pretrained=True)


def test_offline_torchvision_pretrained_fails_with_one_clear_sentence(monkeypatch):
    def offline(*_args, **_kwargs):
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr("torchvision.models._api.load_state_dict_from_url", offline)
    with pytest.raises(InputError, match=r"give a local checkpoint as torchvision:resnet18@PATH"):
        load_model(parse_spec("torchvision:resnet18"), pretrained=True)


def test_checkpoint_and_pretrained_together_are_refused(tmp_path):
    path = tmp_path / "w.pth"
    torch.save({}, path)
    with pytest.raises(InputError, match="give one or the other"):
        load_model(parse_spec(f"timm:resnet18@{path}"), pretrained=True)
