"""A file stitched from shards reads, with repcompare or plain h5py, as the one-process file."""

from dataclasses import replace

import h5py
import numpy as np
import pytest

from repcompare.distributed import Job
from repcompare.errors import InputError
from repcompare.store.file_format import activation_path
from repcompare.store.reader import open_activations
from repcompare.store.shards import shard_path, shard_shapes, stitch
from repcompare.store.writer import ActivationWriter, prepare
from tests.support.activation_files import batches, settings, shapes
from tests.support.faults import datasets

SETTINGS = settings(num_samples=18)  # batches of 4, 4, 4 and 6 rows: the last one merged


def write_shards(out, world: int) -> list:
    """Each rank's share of the batches written into its shard, numbered within it."""
    whole = shapes(SETTINGS)
    every = list(batches(SETTINGS))
    shards = []
    for rank in range(world):
        share = Job(rank, world).share(whole.num_batches)
        part, path = shard_shapes(whole, share), shard_path(out, rank, world)
        assert prepare(path, part, {"model_spec": SETTINGS.model}, force=False) == 0
        writer = ActivationWriter(path, part)
        for batch in every[share.start : share.stop]:
            writer.submit(replace(batch, number=batch.number - share.start))
        writer.close(complete=True)
        shards.append(path)
    return shards


@pytest.fixture
def one_process(tmp_path):
    path = tmp_path / "one.h5"
    prepare(path, shapes(SETTINGS), {"model_spec": SETTINGS.model}, force=False)
    writer = ActivationWriter(path, shapes(SETTINGS))
    for batch in batches(SETTINGS):
        writer.submit(batch)
    writer.close(complete=True)
    return path


@pytest.mark.parametrize("world", [2, 3, 4])
def test_the_stitched_datasets_equal_the_one_process_file_byte_for_byte(
    tmp_path, one_process, world
):
    out = tmp_path / "out" / "stitched.h5"
    shards = write_shards(out, world)
    stitch(out, shapes(SETTINGS), shards)
    got, want = datasets(out), datasets(one_process)
    assert sorted(got) == sorted(want)
    for name, values in want.items():
        assert got[name] == values, name
    with h5py.File(out, "r") as f, h5py.File(one_process, "r") as g:
        assert f[activation_path(1, "fc")].is_virtual
        for key in ("complete", "data_fingerprint", "settings", "layers", "layer_shapes"):
            assert f.attrs[key] == g.attrs[key], key
    with open_activations(out) as f:
        assert f.settings == SETTINGS
        np.testing.assert_array_equal(f.sample_index, np.arange(18) * 7)


def test_a_stitched_file_moves_with_its_shards_and_refuses_to_read_without_them(tmp_path):
    out = tmp_path / "a" / "stitched.h5"
    stitch(out, shapes(SETTINGS), write_shards(out, 2))
    moved = tmp_path / "b"
    (tmp_path / "a").rename(moved)
    with open_activations(moved / "stitched.h5") as f:
        assert f.read(0, "fc", 0, 18).shape == (18, 5)
    shard_path(moved / "stitched.h5", 1, 2).unlink()
    with h5py.File(moved / "stitched.h5", "r") as f:  # plain h5py: NaN, never zeros
        assert np.isnan(f[activation_path(0, "fc")][8:]).all()
        assert not np.isnan(f[activation_path(0, "fc")][:8]).any()
    with pytest.raises(InputError, match=r"reads its rows from the shard .*rank1-of-2\.h5"):
        open_activations(moved / "stitched.h5")
