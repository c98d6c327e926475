"""The independent reference for capture: outputs (or inputs) of modules from plain forward
hooks, and the check that captured activations equal them value for value."""

import torch

from repcompare.capture.capture import capture_layers
from repcompare.capture.graph import discover


def hooked(model, modules: dict[str, torch.nn.Module], images, pre: bool = False):
    """Outputs (or, with ``pre``, inputs) of ``modules`` in one plain forward pass."""
    store, handles = {}, []
    for name, module in modules.items():
        if pre:

            def pre_hook(_m, args, name=name):
                store[name] = args[0].clone()

            handles.append(module.register_forward_pre_hook(pre_hook))
        else:

            def hook(_m, _args, output, name=name):
                store[name] = (output[0] if isinstance(output, tuple) else output).clone()

            handles.append(module.register_forward_hook(hook))
    with torch.no_grad():
        model(images)
    for handle in handles:
        handle.remove()
    return store


def module_outputs(names: list[str]):
    """Reference: the outputs of the modules called ``names``, from plain forward hooks."""
    return lambda m, x: hooked(m, {n: m.get_submodule(n) for n in names}, x)


def check_capture(model, size, names, reference, mode="auto"):
    images = torch.randn(3, 3, size, size, generator=torch.Generator().manual_seed(1))
    graph = discover(model, (3, size, size), mode)
    with capture_layers(model, graph, names) as capture:
        got = capture(images)
    expected = reference(model, images)
    assert len(got) == len(names)
    for name, value in zip(names, got, strict=True):
        assert torch.equal(value, expected[name].flatten(1)), name
