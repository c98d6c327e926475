"""``blocks`` on models without residual blocks: their natural stages, found from the
graph, each equal to an independent forward hook on the stage."""

import pytest
import torchvision

from repcompare.capture.graph import discover
from repcompare.capture.select import select_layers
from tests.support.hooks import check_capture, module_outputs

CASES = {
    "vgg11": (
        lambda: torchvision.models.vgg11(),
        32,
        [f"features.{i}" for i in (2, 5, 10, 15, 20)],  # the max-pools
    ),
    "densenet121": (
        lambda: torchvision.models.densenet121(),
        64,
        [f"features.{kind}{i}" for i in (1, 2, 3) for kind in ("denseblock", "transition")]
        + ["features.denseblock4"],
    ),
    "googlenet": (
        lambda: torchvision.models.googlenet(aux_logits=False, init_weights=False),
        64,
        ["conv1", "conv2", "conv3"]
        + [f"inception{s}" for s in ("3a", "3b", "4a", "4b", "4c", "4d", "4e", "5a", "5b")],
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_blocks_are_the_natural_stages(case):
    build, size, expected = CASES[case]
    model = build().eval()
    graph = discover(model, (3, size, size))
    assert graph.blocks == []
    assert select_layers(graph, ["blocks"]) == expected
    check_capture(model, size, expected, module_outputs(expected))
