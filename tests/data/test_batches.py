import numpy as np
import torch

from repcompare.capture.models import DataConfig
from repcompare.data.batches import InputsDataset, make_loader
from repcompare.data.order import sample_order
from repcompare.data.sources import open_source
from repcompare.data.transforms import (
    TransformOverrides,
    eval_transform,
    resolve_config,
    view_transform,
)


def views_at(size: int):
    return view_transform(resolve_config(DataConfig(), TransformOverrides(size)))


def collect(dataset, workers: int):
    return list(make_loader(dataset, 4, workers))


def test_digests_are_model_independent_and_seeded():
    source, order = open_source("builtin:12:32"), sample_order(12, None, 0)
    two_models = InputsDataset(source, order, [views_at(64), views_at(96)], "simclr", 2, 32, 3)
    item = two_models[5]
    assert item["inputs"][0].shape == (2, 3, 64, 64) and item["inputs"][1].shape == (2, 3, 96, 96)
    other_model = InputsDataset(source, order, [views_at(48)], "simclr", 2, 32, 3)
    assert torch.equal(other_model[5]["digest"], item["digest"])
    other_seed = InputsDataset(source, order, [views_at(48)], "simclr", 2, 32, 4)
    assert not torch.equal(other_seed[5]["digest"], item["digest"])


def test_inputs_equal_the_transform_of_the_source_image():
    source, order = open_source("builtin:8:32"), sample_order(8, None, 1)
    transform = eval_transform(resolve_config(DataConfig(), TransformOverrides(32, 1.0)))
    item = InputsDataset(source, order, [transform], None, 1, 32, 0)[2]
    image, label = source.load(int(order[2]))
    assert item["inputs"][0].dtype == torch.uint8  # workers decode; the device normalises
    assert torch.equal(transform.normalise(item["inputs"][0])[0], transform(image))
    assert (item["label"], item["index"]) == (label, int(order[2]))


def test_two_workers_give_the_same_batches_as_none():
    source, order = open_source("builtin:10:32"), sample_order(10, None, 2)
    dataset = InputsDataset(source, order, [views_at(32)], "simclr", 2, 32, 0)
    serial, parallel = collect(dataset, 0), collect(dataset, 2)
    for a, b in zip(serial, parallel, strict=True):
        assert torch.equal(a["inputs"][0], b["inputs"][0])
        assert torch.equal(a["digest"], b["digest"])
        assert np.array_equal(a["index"].numpy(), b["index"].numpy())
