"""A module called more than once per forward pass has one capture point per call, never
one call standing for all: ``name`` is the first call's output, ``name_1`` the second's, as
forward hooks on the module see them, in fx and hooks mode alike."""

import pytest
import timm
import torch

from repcompare.capture.capture import capture_layers
from repcompare.capture.graph import discover
from repcompare.capture.select import select_layers
from repcompare.errors import InputError


def call_outputs(model, modules: dict[str, torch.nn.Module], images) -> dict[str, list]:
    """``{name: [output of each call]}`` of each module in one plain forward pass (the
    independent reference)."""
    seen: dict[str, list[torch.Tensor]] = {name: [] for name in modules}
    handles = [
        module.register_forward_hook(
            lambda _m, _a, out, name=name: seen[name].append(
                (out[0] if isinstance(out, tuple) else out).clone()
            )
        )
        for name, module in modules.items()
    ]
    with torch.no_grad():
        model(images)
    for handle in handles:
        handle.remove()
    return seen


def numbered(module: str, calls: int) -> list[str]:
    return [module if k == 0 else f"{module}_{k}" for k in range(calls)]


def check_calls(model, size: int, calls: dict[str, list[str]], mode: str, channels: int = 3):
    """Each module of ``calls`` (name -> the name of each call) has one point per call,
    equal to that call's output."""
    images = torch.randn(3, channels, size, size, generator=torch.Generator().manual_seed(4))
    graph = discover(model.eval(), (channels, size, size), mode)
    reference = call_outputs(model, {m: model.get_submodule(m) for m in calls}, images)
    assert {m: len(v) for m, v in reference.items()} == {m: len(v) for m, v in calls.items()}
    names = [name for names in calls.values() for name in names]
    with capture_layers(model, graph, names) as capture:
        got = dict(zip(names, capture(images), strict=True))
    for module, names in calls.items():
        for name, want in zip(names, reference[module], strict=True):
            assert torch.equal(got[name], want.flatten(1)), name
    return graph


class Shared(torch.nn.Module):
    """A shared two-layer module (``mix``) applied twice, and a ``ModuleList`` (``heads``)
    whose elements each run twice; ``act`` is called twice beside a module named
    ``act_1``."""

    def __init__(self):
        super().__init__()
        self.mix = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Tanh())
        self.heads = torch.nn.ModuleList([torch.nn.Linear(4, 4), torch.nn.Linear(4, 4)])
        self.act = torch.nn.ReLU()
        self.act_1 = torch.nn.Sigmoid()

    def forward(self, x):
        x = self.mix(x.flatten(1))
        x = self.mix(x + 1)
        y = self.heads[0](x) + self.heads[1](x)
        y = self.heads[0](y) * self.heads[1](y)
        return self.act_1(self.act(y) + self.act(-y))


@pytest.mark.parametrize("mode", ["fx", "hooks"])
def test_a_shared_module_has_one_point_per_call(mode):
    model = Shared().eval()
    calls = {m: numbered(m, 2) for m in ("mix", "heads.0", "heads.1")}
    calls |= {"act": ["act", "act_2"], "act_1": ["act_1"]}  # act_1 is the Sigmoid's name
    graph = check_calls(model, 2, calls, mode, channels=1)
    assert "mix_2" not in graph and "act_3" not in graph


def test_a_container_whose_elements_ran_twice_names_no_output():
    graph = discover(Shared().eval(), (1, 2, 2), "fx")
    assert "heads" not in graph  # a ModuleList is not called: which call would it be?
    with pytest.raises(InputError, match="no layer 'heads'"):
        select_layers(graph, ["heads"])


COAT = {
    # CoaT-Lite's shared conv position encoding (cpe1) and relative position encoding
    # (crpe1) run once in each of the two serial blocks of stage 1
    "timm:coat_lite_tiny": (
        lambda: timm.create_model("coat_lite_tiny", img_size=64),
        64,
        {m: numbered(m, 2) for m in ("cpe1", "crpe1", "cpe2", "crpe2", "cpe3", "cpe4")},
    ),
}


@pytest.mark.parametrize("mode", ["fx", "hooks"])
@pytest.mark.parametrize("case", sorted(COAT))
def test_coat_shared_position_encodings_have_one_point_per_call(case, mode):
    build, size, calls = COAT[case]
    graph = check_calls(build(), size, calls, mode)
    if mode == "fx":
        assert graph.point("cpe1").name == "cpe1.cat"  # the first call's output node
        assert graph.point("cpe1_1").name == "cpe1.cat_1"
        assert "crpe1.conv_list" not in graph  # its convolutions ran once per call


@pytest.mark.slow
def test_coat_parallel_blocks_shared_mlp_has_one_point_per_scale():
    """CoaT's parallel blocks run one MLP (``mlp2``) on three scales."""
    model = timm.create_model("coat_tiny", img_size=64)
    calls = {"parallel_blocks.0.mlp2": numbered("parallel_blocks.0.mlp2", 3)}
    check_calls(model, 64, calls | {"cpe2": numbered("cpe2", 8)}, "fx")
