import pytest
import torch
import torchvision

from repcompare.capture.graph import discover
from repcompare.capture.select import select_layers
from repcompare.errors import InputError


@pytest.fixture(scope="module")
def graph():
    return discover(torchvision.models.resnet18(), (3, 32, 32))


def test_names_patterns_and_presets_combine_deduplicated_in_depth_order(graph):
    chosen = select_layers(graph, ["layer2.0, layer1.*.bn2", "layer1.1", "layer1.1.relu_1"])
    assert chosen == ["layer1.0.bn2", "layer1.1.bn2", "layer1.1", "layer2.0"]


def test_functional_add_and_second_relu_call_are_selectable(graph):
    chosen = select_layers(graph, ["layer1.0.add,layer1.0.relu,layer1.0.relu_1"])
    assert chosen == ["layer1.0.relu", "layer1.0.add", "layer1.0.relu_1"]


def test_unknown_name_and_empty_pattern_list_close_names(graph):
    with pytest.raises(InputError, match=r"no layer 'layr1\.0'; close names: layer1\.0"):
        select_layers(graph, ["layr1.0"])
    with pytest.raises(InputError, match=r"pattern 'layer9\.\*' matches no layer"):
        select_layers(graph, ["layer9.*"])


def test_model_without_blocks_or_stages_explains_the_empty_preset():
    class Mlp(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1, self.fc2 = torch.nn.Linear(12, 8), torch.nn.Linear(8, 2)

        def forward(self, x):
            return self.fc2(torch.relu(self.fc1(x.flatten(1))))

    plain = discover(Mlp(), (3, 2, 2))
    with pytest.raises(InputError, match="no residual blocks or stages"):
        select_layers(plain, ["blocks"])
    assert len(select_layers(plain, ["all"])) == len(plain.points)


def test_exact_names_with_brackets_win_over_glob_patterns():
    model = torchvision.models.VisionTransformer(
        image_size=32, patch_size=8, num_layers=2, num_heads=2, hidden_dim=16, mlp_dim=32
    )
    graph = discover(model, (3, 32, 32))
    name = "encoder.layers.encoder_layer_1.self_attention[0]"
    assert select_layers(graph, [name]) == [name]
    assert select_layers(graph, ["encoder.layers.encoder_layer_[01].ln_2"]) == [
        "encoder.layers.encoder_layer_0.ln_2",
        "encoder.layers.encoder_layer_1.ln_2",
    ]
