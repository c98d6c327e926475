"""Benchmark: how precise the Gram products of minibatch CKA must be (issue 11, Gram precision).

Captures real activations with repcompare's own on-the-fly path (``repcompare.api.cka``
on two random-init models, seeds 0 and 1, on built-in images) and, for every batch it
feeds to the accumulator, recomputes minibatch CKA (unbiased HSIC_1, features centred
per batch) with the Gram products ``K = Xc Xc^T`` in

- float64: centring and product in float64 (the reference);
- float32: centring and product in float32, IEEE matmul (what repcompare does today);
- TF32: as float32 with the CUDA matmul in TF32 (CUDA only);
- bf16: centred in float32, cast to bfloat16, ``Xb @ Xb^T`` as torch returns it (bf16);
- bf16 -> fp32: the same bf16 inputs with the product accumulated and returned in float32
  (``torch.mm(..., out_dtype=torch.float32)`` on CUDA; on CPU the float32 product of the
  bf16-rounded features, which is the same arithmetic: products of two bf16 values are
  exact in float32).

Everything after the Gram product (U-centring with ``repcompare.similarity.hsic.u_centre``,
the HSIC_1 inner products, the batch sums) is float64. Reported: the largest absolute
difference of each CKA matrix (A x B between the models, and A x A within model A) from
the float64 one, and the largest relative Frobenius error of a Gram matrix. The
package's own result (``MinibatchCKA`` as the command runs it) is compared too.
Target: <= 1e-4.

    uv run python benchmarks/gram_precision.py [--models torchvision:resnet18,torchvision:resnet18]
        [--layers paper] [--images 256] [--image-size 64] [--batch-size 64] [--device auto]
"""

from __future__ import annotations

import argparse
import contextlib

import numpy as np
import torch
from harness import Stopwatch, Workload, add_workload_arguments, device_name, report

import repcompare.analyses.cka as cka_analysis
from repcompare.similarity.hsic import u_centre

TARGET = 1e-4
VARIANTS = {
    "float64": "float64 centring and product (reference)",
    "float32": "float32 centring and product, IEEE matmul (repcompare today)",
    "tf32": "float32 centring, TF32 matmul",
    "bf16": "float32 centring, bf16 features, bf16 product output",
    "bf16-fp32": "float32 centring, bf16 features, product accumulated and output in float32",
}


def tf32_api() -> str:
    """Which switch controls TF32 in CUDA matmuls in this torch."""
    try:
        torch.backends.cuda.matmul.fp32_precision  # noqa: B018 (probe the attribute)
        return "torch.backends.cuda.matmul.fp32_precision"
    except AttributeError:
        return "torch.backends.cuda.matmul.allow_tf32"


@contextlib.contextmanager
def matmul_tf32(enabled: bool, cuda: bool = True):
    """CUDA float32 matmuls in TF32 (``enabled``) or IEEE float32, restored afterwards;
    nothing is switched for CPU tensors (``cuda`` False), whose matmuls are IEEE."""
    matmul = torch.backends.cuda.matmul
    if not cuda:
        yield
    elif tf32_api().endswith("fp32_precision"):
        before = matmul.fp32_precision
        matmul.fp32_precision = "tf32" if enabled else "ieee"
        try:
            yield
        finally:
            matmul.fp32_precision = before
    else:
        before = matmul.allow_tf32
        matmul.allow_tf32 = enabled
        try:
            yield
        finally:
            matmul.allow_tf32 = before


def centred(x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    x = x.reshape(x.shape[0], -1).to(dtype)
    return x - x.mean(dim=0, keepdim=True)


class Grams:
    """Gram products of one batch's layers in each variant."""

    def __init__(self, device: torch.device):
        self.device = device
        self.notes: dict[str, str] = {}

    def variants(self) -> list[str]:
        names = list(VARIANTS)
        if self.device.type != "cuda":
            names.remove("tf32")
        return names

    def bf16_fp32(self, xb: torch.Tensor) -> torch.Tensor:
        if xb.is_cuda:
            try:
                k = torch.mm(xb, xb.T, out_dtype=torch.float32)
                self.notes.setdefault("bf16-fp32", "torch.mm(bf16, bf16, out_dtype=float32)")
                return k
            except (RuntimeError, TypeError) as error:
                self.notes["bf16-fp32"] = (
                    f"torch.mm out_dtype unavailable ({type(error).__name__}); emulated as the "
                    "IEEE float32 product of the bf16-rounded features"
                )
        else:
            self.notes.setdefault(
                "bf16-fp32",
                "emulated on CPU: IEEE float32 product of the bf16-rounded features",
            )
        xf = xb.to(torch.float32)
        with matmul_tf32(False, xf.is_cuda):
            return xf @ xf.T

    def gram(self, x: torch.Tensor, variant: str) -> torch.Tensor:
        if variant == "float64":
            xc = centred(x, torch.float64)
            return xc @ xc.T
        if variant in ("float32", "tf32"):
            xc = centred(x, torch.float32)
            with matmul_tf32(variant == "tf32", xc.is_cuda):
                return xc @ xc.T
        xb = centred(x, torch.float32).to(torch.bfloat16)
        if variant == "bf16":
            return xb @ xb.T
        return self.bf16_fp32(xb)


class Accumulator:
    """Weighted minibatch sums of HSIC_1 (float64) for A x B and A x A."""

    def __init__(self):
        self.ab = self.aa = self.self_a = self.self_b = None

    def add(self, u_a: torch.Tensor, u_b: torch.Tensor, m: int) -> None:
        weight = 1.0 / (m - 3)  # batch weight m times the HSIC_1 normaliser 1 / (m (m - 3))
        terms = (u_a @ u_b.T, u_a @ u_a.T, u_a.square().sum(1), u_b.square().sum(1))
        if self.ab is None:
            self.ab, self.aa, self.self_a, self.self_b = (weight * t for t in terms)
        else:
            for name, term in zip(("ab", "aa", "self_a", "self_b"), terms, strict=True):
                setattr(self, name, getattr(self, name) + weight * term)

    def cka(self) -> tuple[np.ndarray, np.ndarray]:
        a, b = self.self_a.cpu().numpy(), self.self_b.cpu().numpy()
        with np.errstate(invalid="ignore", divide="ignore"):
            ab = self.ab.cpu().numpy() / np.sqrt(a[:, None] * b[None, :])
            aa = self.aa.cpu().numpy() / np.sqrt(a[:, None] * a[None, :])
        return ab, aa


class Probe:
    """Fed every batch the CKA run sees; recomputes it in each precision."""

    def __init__(self, device: torch.device):
        self.grams = Grams(device)
        self.sums = {v: Accumulator() for v in self.grams.variants()}
        self.gram_error = dict.fromkeys(self.grams.variants(), 0.0)
        self.batches = 0
        self.examples = 0
        self.seconds = dict.fromkeys(self.grams.variants(), 0.0)

    def stacked(self, feats: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        out = {v: [] for v in self.sums}
        for x in feats:
            reference = None
            for variant in self.sums:
                with Stopwatch(x.device) as watch:
                    k = self.grams.gram(x, variant)
                self.seconds[variant] += watch.seconds
                k64 = k.to(torch.float64)
                if variant == "float64":
                    reference = k64
                else:
                    error = (
                        torch.linalg.norm(k64 - reference) / torch.linalg.norm(reference)
                    ).item()
                    self.gram_error[variant] = max(self.gram_error[variant], error)
                out[variant].append(u_centre(k64).reshape(-1))
        return {v: torch.stack(rows) for v, rows in out.items()}

    def add(self, feats_a: list[torch.Tensor], feats_b: list[torch.Tensor]) -> None:
        m = feats_a[0].shape[0]
        u_a, u_b = self.stacked(feats_a), self.stacked(feats_b)
        for variant, sums in self.sums.items():
            sums.add(u_a[variant], u_b[variant], m)
        self.batches += 1
        self.examples += m


def max_error(values: np.ndarray, reference: np.ndarray) -> float:
    both = np.isfinite(values) & np.isfinite(reference)
    return float(np.abs(values[both] - reference[both]).max()) if both.any() else float("nan")


def verdict(error: float) -> str:
    if not np.isfinite(error):
        return "n/a"
    return "met" if error <= TARGET else "not met"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_workload_arguments(parser)
    work = Workload.from_args(parser.parse_args())
    modules = work.modules()
    probe = Probe(work.device)
    original = cka_analysis.CKARun.update

    def update(self, batch):
        feats_a = batch.feats[0][0]  # side A's (and B's) first view
        probe.add(list(feats_a), list(feats_a if self.symmetric else batch.feats[1][0]))
        original(self, batch)

    cka_analysis.CKARun.update = update
    try:
        with Stopwatch() as watch:
            result = work.cka(modules)
    finally:
        cka_analysis.CKARun.update = original
    names = result.matrix.names_a
    reference_ab, reference_aa = probe.sums["float64"].cka()
    title = (
        f"{','.join(work.models)} (random init, seeds 0 and 1), {len(names)} x "
        f"{len(result.matrix.names_b)} layers ({work.layers}, --reduce {work.reduce}), "
        f"{probe.examples} built-in images at {work.image_size}px in {probe.batches} batches of "
        f"{work.batch_size}, {device_name(work.device)}, torch {torch.__version__}; "
        f"TF32 switch: {tf32_api()}; {watch.seconds:.1f} s"
    )
    columns = (
        "Gram product",
        "max abs error, CKA A x B",
        "max abs error, CKA A x A",
        "max rel. Frobenius error of K",
        "Gram time (s)",
        "target <= 1e-4",
    )
    rows, verdicts = [], []
    for variant in VARIANTS:
        label = f"{variant}: {VARIANTS[variant]}"
        if variant not in probe.sums:
            rows.append((label, "n/a on CPU", "n/a on CPU", "", "", "n/a"))
            verdicts.append(f"{variant} n/a on CPU")
            continue
        ab, aa = probe.sums[variant].cka()
        error_ab, error_aa = max_error(ab, reference_ab), max_error(aa, reference_aa)
        worst = max(error_ab, error_aa)
        gram = "0 (reference)" if variant == "float64" else f"{probe.gram_error[variant]:.1e}"
        met = "reference" if variant == "float64" else verdict(worst)
        seconds = f"{probe.seconds[variant]:.2f}"
        rows.append((label, f"{error_ab:.1e}", f"{error_aa:.1e}", gram, seconds, met))
        if variant != "float64":
            verdicts.append(f"{variant} {met} ({worst:.1e})")
    package = max_error(result.matrix.values, reference_ab)
    package_row = "repcompare MinibatchCKA as the command ran it (float32)"
    rows.append((package_row, f"{package:.1e}", "", "", "", verdict(package)))
    report(rows, title, columns=columns, align="lrrrrl")
    for variant, note in probe.grams.notes.items():
        print(f"\n{variant}: {note}.")
    print(
        f"\nCKA values: A x B in [{np.nanmin(reference_ab):.3f}, {np.nanmax(reference_ab):.3f}], "
        f"A x A min {np.nanmin(reference_aa):.3f}."
    )
    verdicts.append(f"package {verdict(package)} ({package:.1e})")
    print("\nVERDICT: " + "; ".join(verdicts))


if __name__ == "__main__":
    main()
