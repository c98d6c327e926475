"""Benchmark P-ATLAS: an atlas of many small ViTs with every sub-layer, analysis and writing apart.

Workload (issue 27): K ViT-tiny models (``--spec``, default ``timm:vit_tiny_patch16_224``,
model i initialised with seed i and saved as a safetensors checkpoint), the ``sublayers``
preset, ``--reduce flatten``, built-in images at 64 px in batches of 128, linear CKA. Each K
runs in a fresh process: ``repcompare.atlas(...)`` (the analysis: every model's forward
passes and the all-pairs accumulator), then ``result.save(out)`` (the writing: atlas.csv,
.json, .md, .h5 and the pictures). Reported: the wall time and the peak resident memory
after each (peak RSS only grows, so the second is the peak of the whole command), and the
size of each output file. The last line, ``VERDICT: ...``, gives the largest share of the
writing in a run's time against the target of 10%.

``--checkout DIR`` runs the same workload with another checkout of repcompare (its own
``.venv``), e.g. the commit before Gram-first streaming, for a before/after table.

    uv run python benchmarks/atlas_scale.py [--counts 12,24] [--spec timm:vit_tiny_patch16_224]
        [--images 512] [--image-size 64] [--batch-size 128] [--device auto] [--checkout DIR]
        [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from harness import REPO, Report, Workload, add_workload_arguments, peak_rss_mb, spawn_job

SPEC = "timm:vit_tiny_patch16_224"
WRITING_TARGET = 0.10


def child(args: argparse.Namespace) -> None:
    """One atlas in this process; its figures to ``args.result``."""
    import repcompare

    specs = json.loads(args.specs)
    started = time.perf_counter()
    result = repcompare.atlas(
        *specs,
        layers="sublayers",
        reduce="flatten",
        data=f"builtin:{args.images}:{args.image_size}",
        image_size=args.image_size,
        batch_size=args.batch_size,
        device=args.device,
        workers=0,
    )
    analysis = time.perf_counter() - started
    analysis_peak = peak_rss_mb()
    started = time.perf_counter()
    out = Path(args.out)
    result.save(out)
    writing = time.perf_counter() - started
    sizes = {p.name: p.stat().st_size for p in out.iterdir() if p.is_file()}
    Path(args.result).write_text(
        json.dumps(
            {
                "layers": len(result.names),
                "analysis_s": analysis,
                "analysis_peak_mb": analysis_peak,
                "writing_s": writing,
                "peak_mb": peak_rss_mb(),
                "sizes": sizes,
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", default="12,24", help="the numbers of models, comma-separated")
    add_workload_arguments(
        parser, ["images", "image_size", "batch_size", "device"], images=512, image_size=64
    )
    parser.set_defaults(batch_size=128)
    parser.add_argument("--spec", default=SPEC, help="the model (default: %(default)s)")
    parser.add_argument("--checkout", type=Path, default=REPO, help="the repcompare checkout")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--specs", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    counts = [int(k) for k in args.counts.split(",")]
    python = args.checkout / ".venv" / "bin" / "python"
    report = Report(
        ["models", "layers", "analysis s", "analysis peak GB", "writing s", "peak GB", "outputs"],
        title=f"P-ATLAS with {args.checkout.name}: {args.spec} x K, sublayers, flatten, "
        f"{args.images} images at {args.image_size} px, batch {args.batch_size}",
        json_path=args.json,
    )
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        workload = Workload([args.spec] * max(counts), image_size=args.image_size)
        specs = workload.checkpoints(root)
        for count in counts:
            figures = spawn_job(
                [
                    str(python),
                    __file__,
                    "--child",
                    "--specs",
                    json.dumps(specs[:count]),
                    "--out",
                    str(root / f"out{count}"),
                    "--result",
                    str(root / "result.json"),
                    "--images",
                    str(args.images),
                    "--image-size",
                    str(args.image_size),
                    "--batch-size",
                    str(args.batch_size),
                    "--device",
                    args.device,
                ],
                root / "result.json",
            )
            if "error" in figures:
                report.add({"models": count, "outputs": figures["error"]})
                continue
            sizes = ", ".join(
                f"{name} {size / 1e6:.1f} MB"
                for name, size in sorted(figures["sizes"].items())
                if size > 1e6
            )
            report.add(
                {
                    "models": count,
                    "layers": figures["layers"],
                    "analysis s": f"{figures['analysis_s']:.1f}",
                    "analysis peak GB": f"{figures['analysis_peak_mb'] / 1024:.2f}",
                    "writing s": f"{figures['writing_s']:.1f}",
                    "peak GB": f"{figures['peak_mb'] / 1024:.2f}",
                    "outputs": sizes or "all under 1 MB",
                }
            )
    report.close()
    shares = [
        float(row["writing s"]) / (float(row["analysis s"]) + float(row["writing s"]))
        for row in report.rows
        if "writing s" in row
    ]
    if shares:
        met = "met" if max(shares) <= WRITING_TARGET else "not met"
        print(f"VERDICT: {met} (writing at most {max(shares):.0%} of a run; peak GB above)")


if __name__ == "__main__":
    sys.exit(main())
