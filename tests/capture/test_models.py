import subprocess
import sys
import urllib.error

import pytest
import timm
import torch
import torchvision

from repcompare.capture.models import load_model
from repcompare.capture.spec import parse_spec
from repcompare.errors import InputError
from repcompare.limits import DEFAULT_INIT_SEED


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


WEIGHTS_DIGEST = """
import hashlib, sys
from repcompare.capture.models import load_model
from repcompare.capture.spec import parse_spec
loaded = load_model(parse_spec("timm:resnet18"), init_seed=int(sys.argv[1]))
digest = hashlib.sha256()
for value in loaded.module.state_dict().values():
    digest.update(value.numpy().tobytes())
print(digest.hexdigest())
"""


def weights_digest(seed: int) -> str:
    done = subprocess.run(
        [sys.executable, "-c", WEIGHTS_DIGEST, str(seed)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_random_init_is_the_same_in_two_processes_and_differs_by_seed():
    first, second, other = weights_digest(0), weights_digest(0), weights_digest(1)
    assert first == second
    assert other != first


def test_random_init_equals_timm_under_the_seed_and_leaves_the_global_rng_alone():
    torch.manual_seed(123)
    state_before = torch.random.get_rng_state()
    loaded = load_model(parse_spec("timm:resnet18"), init_seed=3)
    assert torch.equal(torch.random.get_rng_state(), state_before)
    assert loaded.init_seed == 3
    assert any("init seed 3" in note for note in loaded.notes)
    torch.manual_seed(3)
    reference = timm.create_model("resnet18").state_dict()
    for key, value in loaded.module.state_dict().items():
        assert torch.equal(value, reference[key]), key
    assert load_model(parse_spec("timm:resnet18")).init_seed == DEFAULT_INIT_SEED == 0


def test_init_seed_is_none_when_weights_come_from_a_checkpoint(tmp_path):
    path = tmp_path / "r18.pth"
    torch.save(load_model(parse_spec("timm:resnet18"), init_seed=4).module.state_dict(), path)
    assert load_model(parse_spec(f"timm:resnet18@{path}")).init_seed is None


def test_torchvision_vit_is_built_for_the_image_size():
    loaded = load_model(parse_spec("torchvision:vit_b_16"), image_size=32)
    torch.manual_seed(0)
    reference = torchvision.models.vit_b_16(image_size=32).eval()
    images = torch.randn(2, 3, 32, 32)
    with torch.inference_mode():
        assert torch.equal(loaded.module(images), reference(images))
