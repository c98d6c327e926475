import weakref

import torch
import torchvision

import repcompare
from repcompare.options import DataOptions, ModelOptions
from repcompare.progress import Feedback
from repcompare.sides import batches as activations
from repcompare.sides.batches import prepare_inputs, stream_activations
from repcompare.sides.build import capture_target
from repcompare.sides.plan import InputPlan


def test_every_model_runs_on_the_device_asked_for():
    """The models move with the data: on the meta device (a stand-in for a GPU that any
    machine has) a model left on the CPU fails with 'Tensor on device cpu is not on the
    expected device meta'."""
    options = ModelOptions(image_size=32)
    targets = [
        capture_target(spec, ["blocks"], "flatten", options, Feedback())
        for spec in ("torchvision:resnet18", "timm:resnet18")
    ]
    plan = InputPlan(DataOptions(data="builtin:8:32", workers=0), batch_size=4)
    batch = next(
        stream_activations(targets, plan, prepare_inputs(plan, targets), torch.device("meta"))
    )
    devices = {x.device.type for model in batch.activations for view in model for x in view}
    assert devices == {"meta"}
    assert all(p.device.type == "meta" for t in targets for p in t.loaded.module.parameters())


def test_extract_drops_each_batch_before_the_next_forward_pass(tmp_path, monkeypatch):
    """With float16 storage the writer gets copies, so the captured float32 activations of
    a batch must be gone when the next forward pass starts (one batch in memory, not two)."""
    seen: list[weakref.ref] = []

    class Recorded(activations.StreamedBatch):
        def __init__(self, **fields):
            super().__init__(**fields)
            seen.extend(weakref.ref(x) for model in self.activations for v in model for x in v)

    def no_earlier_batch_alive(_module, _inputs):
        assert all(ref() is None for ref in seen), "an earlier batch is still referenced"

    monkeypatch.setattr(activations, "StreamedBatch", Recorded)
    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=4)
    model.conv1.register_forward_pre_hook(no_earlier_batch_alive)
    data = {"data": "builtin:32:32", "image_size": 32, "crop_pct": 1.0, "workers": 0}
    result = repcompare.extract(
        model, out=tmp_path / "a.h5", layers="layer1.1,layer3.1", batch_size=8, **data
    )
    assert result.images == 32 and len(seen) == 4 * 2
