import h5py
import numpy as np
import pytest
import torch

from repcompare.errors import InputError
from repcompare.store.file_format import activation_path
from repcompare.store.reader import open_activations
from repcompare.store.writer import prepare
from tests.support.activation_files import settings, shapes, write


def test_round_trip_values_chunks_and_metadata(tmp_path):
    path, s = tmp_path / "a.h5", settings()
    written = write(path, s)
    with open_activations(path) as f:
        assert f.layers == ("layer1.0", "fc")
        assert f.settings == s
        np.testing.assert_array_equal(f.sample_index, np.arange(10) * 7)
        for view in range(2):
            got = np.concatenate(list(x[1] for x in f.batches(view, ["layer1.0", "fc"])))
            want = torch.cat([b.activations[view][1] for b in written]).numpy()
            np.testing.assert_array_equal(got, want)
        assert f.handle[activation_path(1, "fc")].chunks == (4, 5)
        assert len(f.attrs["data_fingerprint"]) == 64


def test_incomplete_file_is_refused_and_resumes_to_the_same_content(tmp_path):
    s = settings()
    write(tmp_path / "whole.h5", s)
    partial = tmp_path / "partial.h5"
    write(partial, s, stop_after=1)
    with pytest.raises(InputError, match=r"incomplete \(4 of 10 samples\); rerun the same"):
        open_activations(partial)
    write(partial, s)
    with h5py.File(tmp_path / "whole.h5") as a, h5py.File(partial) as b:
        for name in ("labels", "sample_index", "input_digest", activation_path(1, "layer1.0")):
            np.testing.assert_array_equal(a[name][()], b[name][()])
        assert a.attrs["data_fingerprint"] == b.attrs["data_fingerprint"]


def test_other_settings_need_force_and_same_settings_are_done(tmp_path):
    path = tmp_path / "a.h5"
    write(path, settings())
    assert prepare(path, shapes(settings()), {}, force=False) == 10
    with pytest.raises(InputError, match=r"complete file made with other settings \(seed: 0 -> 1"):
        prepare(path, shapes(settings(seed=1)), {}, force=False)
    assert prepare(path, shapes(settings(seed=1)), {}, force=True) == 0


def test_foreign_and_missing_files_are_input_errors(tmp_path):
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f["x"] = 1
    with pytest.raises(InputError, match="not a repcompare activation file"):
        open_activations(other)
    with pytest.raises(InputError, match="does not exist"):
        open_activations(tmp_path / "none.h5")
    with pytest.raises(InputError, match="not a readable repcompare activation file"):
        prepare(other, shapes(settings()), {}, force=False)


def test_a_file_begun_with_the_old_batch_plan_is_not_resumed(tmp_path):
    path, s = tmp_path / "a.h5", settings()
    write(path, s, stop_after=1)
    with h5py.File(path, "r+") as f:
        f["rows_done"][()] = 8  # batches of 4, 4 and 2 before short batches were merged
    with pytest.raises(InputError, match=r"older batch plan \(8 rows done\); pass --force"):
        prepare(path, shapes(s), {}, force=False)
