import torch

from repcompare.activations import InputPlan, prepare_inputs, stream_activations
from repcompare.assemble import capture_target
from repcompare.options import ModelOptions
from repcompare.progress import Feedback


def test_every_model_runs_on_the_device_asked_for():
    """The models move with the data: on the meta device (a stand-in for a GPU that any
    machine has) a model left on the CPU fails with 'Tensor on device cpu is not on the
    expected device meta'."""
    options = ModelOptions(image_size=32)
    targets = [
        capture_target(spec, ["blocks"], "flatten", options, Feedback())
        for spec in ("torchvision:resnet18", "timm:resnet18")
    ]
    plan = InputPlan(data="builtin:8:32", batch_size=4)
    batch = next(
        stream_activations(targets, plan, prepare_inputs(plan, targets), torch.device("meta"))
    )
    devices = {x.device.type for model in batch.activations for view in model for x in view}
    assert devices == {"meta"}
    assert all(p.device.type == "meta" for t in targets for p in t.loaded.module.parameters())
