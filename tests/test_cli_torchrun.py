"""Commands run by ``torchrun --nproc-per-node 2`` (gloo on the CPU) against one process.

torchrun gives each process one thread (``OMP_NUM_THREADS=1``); the one-process
references run with one thread too, since a convolution's float32 sums depend on
the number of threads (about 1e-9 in CKA otherwise), not on the division of work.
"""

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import pytest

from repcompare.store.reader import open_activations
from repcompare.store.shards import shard_path
from tests.support.faults import assert_same_datasets, rows_done

ONE_THREAD = os.environ | {"OMP_NUM_THREADS": "1"}
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
DATA = ["--data", "builtin:96:32", "--image-size", "32", "--batch-size", "16", "--workers", "0"]
LAYERS = "layer1.0,layer3.1,layer4.1"
RESNET, VIT = "timm:resnet18", "timm:vit_tiny_patch16_224"
SMALL = [*DATA, "--layers", LAYERS]
LONG = [  # 25 batches: long enough to kill one process mid-way
    *("--data", "builtin:200:48", "--image-size", "48", "--batch-size", "8"),
    *("--workers", "0", "--layers", "layer1.0,layer2.1,layer4.1"),
]


def torchrun(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*TORCHRUN, "-m", "repcompare", *args], capture_output=True, text=True, timeout=600
    )


def one_process(*args: str) -> subprocess.CompletedProcess:
    done = subprocess.run(
        [sys.executable, "-m", "repcompare", *args],
        capture_output=True,
        text=True,
        timeout=600,
        env=ONE_THREAD,
    )
    assert done.returncode == 0, done.stderr
    return done


def assert_documents_equal(got: dict, want: dict, atol: float = 1e-10, where: str = "") -> None:
    """Equal JSON documents, numbers within ``atol`` (the run's seconds and device aside)."""
    if isinstance(want, dict):
        assert set(got) == set(want), where
        for key in set(want) - {"seconds", "device"}:
            assert_documents_equal(got[key], want[key], atol, f"{where}.{key}")
    elif isinstance(want, list):
        assert len(got) == len(want), where
        for i, (g, w) in enumerate(zip(got, want, strict=True)):
            assert_documents_equal(g, w, atol, f"{where}[{i}]")
    elif isinstance(want, float) and not math.isnan(want):
        assert abs(got - want) <= atol, (where, got, want)
    elif isinstance(want, float):
        assert math.isnan(got), where
    else:
        assert got == want, where


@pytest.mark.slow
def test_cka_across_two_processes_equals_one_process_with_its_bootstrap(tmp_path):
    args = ["timm:resnet18", "torchvision:resnet18", *DATA, "--layers-a", LAYERS]
    args += ["--bootstrap", "20"]
    one = one_process("cka", *args, "--out", str(tmp_path / "one"))
    two = torchrun("cka", *args, "--out", str(tmp_path / "two"))
    assert two.returncode == 0, two.stderr
    want = json.loads((tmp_path / "one" / "cka.json").read_text())
    got = json.loads((tmp_path / "two" / "cka.json").read_text())
    assert_documents_equal(got, want)
    assert got["ci_low"] == want["ci_low"] and got["ci_high"] == want["ci_high"]
    assert two.stderr.count("wrote cka.csv") == 1  # rank 0 writes and speaks, alone
    assert len(two.stdout.splitlines()) == len(one.stdout.splitlines())


@pytest.mark.slow
@pytest.mark.parametrize(
    ("command", "document", "extra"),
    [
        ("invariance", "invariance.json", [RESNET, VIT, "--augment", "simclr", "--bootstrap", "9"]),
        ("invariance", "invariance.json", [VIT, "--augment", "flip", "--reduce", "tokens"]),
        ("class-fit", "class_fit.json", [RESNET, VIT, "--tokens", "--bootstrap", "10"]),
    ],
)
def test_invariance_and_class_fit_across_two_processes_equal_one_process(
    tmp_path, command, document, extra
):
    """Maps and tokens with a class token; token rows sampled per batch number."""
    args = [*extra, *DATA, "--layers", "blocks"]
    one_process(command, *args, "--out", str(tmp_path / "one"))
    two = torchrun(command, *args, "--out", str(tmp_path / "two"))
    assert two.returncode == 0, two.stderr
    assert_documents_equal(
        json.loads((tmp_path / "two" / document).read_text()),
        json.loads((tmp_path / "one" / document).read_text()),
    )


@pytest.mark.slow
def test_atlas_across_two_processes_equals_one_process(tmp_path):
    """Two models and the untrained baseline of each, Gram-first; the matrices in atlas.json."""
    args = [RESNET, "timm:resnet18#seed=3", VIT, *DATA, "--layers", "blocks"]
    args += ["--baseline", "untrained"]
    one_process("atlas", *args, "--out", str(tmp_path / "one"))
    two = torchrun("atlas", *args, "--out", str(tmp_path / "two"))
    assert two.returncode == 0, two.stderr
    assert_documents_equal(
        json.loads((tmp_path / "two" / "atlas.json").read_text()),
        json.loads((tmp_path / "one" / "atlas.json").read_text()),
    )


@pytest.mark.slow
def test_study_across_two_processes_equals_one_process_and_rank_0_writes_it(tmp_path):
    """Every pass divided between the processes: CKA with bootstrap intervals, invariance,
    class fit and the untrained baselines; study.json equal, written once."""
    args = [RESNET, "timm:resnet18#seed=1", *DATA, "--augment", "flip", "--bootstrap", "20"]
    one_process("study", *args, "--out", str(tmp_path / "one"))
    two = torchrun("study", *args, "--out", str(tmp_path / "two"))
    assert two.returncode == 0, two.stderr
    assert two.stdout.count("wrote the report") + two.stderr.count("wrote the report") == 1
    got = json.loads((tmp_path / "two" / "study.json").read_text())
    want = json.loads((tmp_path / "one" / "study.json").read_text())
    for document in (got, want):
        document.pop("reused", None)
        document["settings"].pop("versions", None)
    assert_documents_equal(got, want)
    assert (tmp_path / "two" / "report.html").is_file()


@pytest.mark.slow
def test_the_python_api_divides_the_work_inside_torchrun(tmp_path):
    script = Path(__file__).with_name("torchrun_api.py")
    subprocess.run(
        [sys.executable, str(script), str(tmp_path / "one.json")], check=True, env=ONE_THREAD
    )
    two = subprocess.run(
        [*TORCHRUN, str(script), str(tmp_path / "two.json")], capture_output=True, text=True
    )
    assert two.returncode == 0, two.stderr
    got = json.loads((tmp_path / "two.json").read_text())
    assert got.pop("world") == 2
    want = json.loads((tmp_path / "one.json").read_text())
    assert want.pop("world") == 1
    assert_documents_equal(got, want)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """Uninterrupted one-process extracts, made on demand, one per argument list."""
    root, made = tmp_path_factory.mktemp("reference"), {}

    def get(args: list[str]) -> Path:
        key = " ".join(args)
        if key not in made:
            made[key] = root / f"{len(made)}.h5"
            one_process("extract", "timm:resnet18", *args, "--out", str(made[key]))
        return made[key]

    return get


@pytest.mark.slow
def test_extract_across_two_processes_stitches_the_one_process_file(tmp_path, reference):
    out = tmp_path / "a.h5"
    two = torchrun("extract", "timm:resnet18", *SMALL, "--out", str(out))
    assert two.returncode == 0, two.stderr
    assert_same_datasets(out, reference(SMALL))  # plain h5py, byte for byte
    with h5py.File(out, "r") as f:
        assert f["activations/view0/layer4.1"].is_virtual
        assert json.loads(f.attrs["shards"]) == [f"a.h5.shards/rank{r}-of-2.h5" for r in range(2)]
    with open_activations(out) as f:
        assert f.settings.num_samples == 96
    again = torchrun("extract", "timm:resnet18", *SMALL, "--out", str(out))
    assert again.returncode == 0 and "already complete" in again.stderr
    files = [str(out), str(reference(SMALL)), "--batch-size", "16"]  # each process reads a share
    one_process("cka", *files, "--out", str(tmp_path / "one"))
    assert torchrun("cka", *files, "--out", str(tmp_path / "two")).returncode == 0
    assert_documents_equal(
        json.loads((tmp_path / "two" / "cka.json").read_text()),
        json.loads((tmp_path / "one" / "cka.json").read_text()),
    )


@pytest.mark.slow
def test_a_gram_store_extracted_across_two_processes_is_the_one_process_store(tmp_path, reference):
    """100 images in batches of 16: the last batch, of 4, pads its Gram in rank 1's shard."""
    args = [*DATA, "--layers", LAYERS, "--store", "grams"]
    args[1] = "builtin:100:32"
    out = tmp_path / "g.h5"
    two = torchrun("extract", "timm:resnet18", *args, "--out", str(out))
    assert two.returncode == 0, two.stderr
    assert_same_datasets(out, reference(args))
    with h5py.File(out, "r") as f:
        assert f["grams/view0/layer4.1"].is_virtual
        assert f["grams/view0/layer4.1"].shape == (7, 16, 16)
    with open_activations(out) as f:
        assert f.settings.store == "grams"


@pytest.mark.slow
def test_a_measure_that_cannot_be_combined_is_refused_before_any_work(tmp_path):
    args = ["cka", RESNET, "torchvision:resnet18", *DATA, "--measure", "procrustes"]
    refused = torchrun(*args, "--out", str(tmp_path / "out"))
    assert refused.returncode != 0
    sentence = (
        "--measure procrustes does not run across the processes of a torchrun job; run it in "
        "one process, or use --measure cka with --estimator minibatch, exact or debiased"
    )
    errors = [line for line in refused.stderr.splitlines() if line.startswith("error:")]
    assert errors  # each rank refuses alike; the first to stop has torchrun stop the other
    assert {line.removeprefix("error: ").removeprefix("rank 1: ") for line in errors} == {sentence}
    assert not (tmp_path / "out" / "cka.json").exists()


@pytest.mark.slow
def test_a_rank_that_cannot_write_its_shard_stops_the_job_and_the_rerun_resumes(
    tmp_path, reference
):
    out = tmp_path / "a.h5"
    blocked = shard_path(out, 1, 2)
    blocked.mkdir(parents=True)  # a folder where rank 1's shard must go
    failed = torchrun("extract", "timm:resnet18", *SMALL, "--out", str(out))
    assert failed.returncode != 0
    errors = [line for line in failed.stderr.splitlines() if line.startswith("error:")]
    assert f"error: rank 1: {blocked} exists but is not a readable repcompare" in errors[0]
    assert "Traceback" not in "".join(
        line for line in failed.stderr.splitlines() if line.startswith("[rank")
    )
    assert not out.exists()
    blocked.rmdir()
    rerun = torchrun("extract", "timm:resnet18", *SMALL, "--out", str(out))
    assert rerun.returncode == 0, rerun.stderr
    assert_same_datasets(out, reference(SMALL))


@pytest.mark.slow
def test_sigkill_of_one_rank_mid_extract_then_a_rerun_gives_the_uninterrupted_file(
    tmp_path, reference
):
    out = tmp_path / "a.h5"
    job = subprocess.Popen(
        [*TORCHRUN, "-m", "repcompare", "extract", "timm:resnet18", *LONG, "--out", str(out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    shard = shard_path(out, 1, 2)
    deadline = time.monotonic() + 300
    while rows_done(shard) < 16 and job.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    pid = int((shard.parent / f".{shard.name}.lock").read_text())
    os.kill(pid, signal.SIGKILL)
    _, stderr = job.communicate(timeout=300)
    assert job.returncode != 0, stderr
    told = [line for line in stderr.splitlines() if "rank 1 of this torchrun job" in line]
    assert told, stderr  # the survivor names the rank that died ...
    assert stderr.index(told[0]) < stderr.index("ChildFailedError")  # ... before torchrun does
    assert not out.exists()
    assert 16 <= rows_done(shard) < 100
    rerun = torchrun("extract", "timm:resnet18", *LONG, "--out", str(out))
    assert rerun.returncode == 0, rerun.stderr
    assert_same_datasets(out, reference(LONG))
