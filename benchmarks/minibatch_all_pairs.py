"""Benchmark: all-pairs minibatch CKA accumulator against a per-pair loop.

One batch of ``--batch`` examples, ``--layers`` layers on each side (32 x 32
pairs by default), for each feature width. Both methods form each layer's
Gram matrix once (the per-pair loop caches them, as a careful hand-written
loop would); they differ in how the HSIC_1 terms of the L_A x L_B pairs and
the self terms are computed:

- per-pair loop: ``hsic_unbiased(K_a, L_b)`` for every pair plus the self terms;
- all-pairs: ``MinibatchCKA.update``: one (L_A x m^2) @ (m^2 x L_B) product.

Reported: Gram time (shared), pair-scoring time of each method, the full
update time of the accumulator, and the largest difference between the two
methods' CKA matrices. Run with ``uv run python benchmarks/minibatch_all_pairs.py``.
"""

from __future__ import annotations

import argparse

import torch
from harness import Report, add_workload_arguments, device, device_name, timed

from repcompare.similarity import MinibatchCKA, gram, hsic_unbiased, u_centre

COLUMNS = (
    "width",
    "Grams (s)",
    "per-pair scoring (s)",
    "all-pairs scoring (s)",
    "speed-up (scoring)",
    "per-pair total (s)",
    "accumulator update (s)",
    "speed-up (total)",
    "max abs diff",
)


def per_pair_loop(grams_a, grams_b) -> torch.Tensor:
    cross = torch.stack([torch.stack([hsic_unbiased(k, g) for g in grams_b]) for k in grams_a])
    self_a = torch.stack([hsic_unbiased(k, k) for k in grams_a])
    self_b = torch.stack([hsic_unbiased(g, g) for g in grams_b])
    return cross / torch.sqrt(torch.outer(self_a, self_b))


def all_pairs_scoring(grams_a, grams_b) -> torch.Tensor:
    u_a = torch.stack([u_centre(k).reshape(-1) for k in grams_a])
    u_b = torch.stack([u_centre(g).reshape(-1) for g in grams_b])
    cross = u_a @ u_b.T
    return cross / torch.sqrt(torch.outer(u_a.square().sum(1), u_b.square().sum(1)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--widths", default="64,256,1024,4096,16384,65536")
    parser.add_argument("--layers", type=int, default=32)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    add_workload_arguments(parser, ["device"])
    args = parser.parse_args()
    on = device(args.device)
    title = (
        f"device: {device_name(on)}, torch {torch.__version__}, threads "
        f"{torch.get_num_threads()}, {args.layers} x {args.layers} layers, batch {args.batch}, "
        f"median of {args.repeats}"
    )
    table = Report(COLUMNS, title, align="r" * len(COLUMNS))
    gen = torch.Generator(device=on).manual_seed(0)

    def median(fn):
        """(median seconds, last result) of ``--repeats`` calls, no warm-up."""
        timing = timed(fn, runs=args.repeats, warmup=0, on=on)
        return timing.median, timing.result

    for width in (int(w) for w in args.widths.split(",")):
        feats = [
            torch.relu(torch.randn(args.batch, width, generator=gen, device=on)) + 1
            for _ in range(2 * args.layers)
        ]
        feats_a, feats_b = feats[: args.layers], feats[args.layers :]

        t_gram, grams = median(
            lambda fa=feats_a, fb=feats_b: ([gram(x) for x in fa], [gram(y) for y in fb])
        )
        t_loop, loop = median(lambda g=grams: per_pair_loop(*g))
        t_all, fast = median(lambda g=grams: all_pairs_scoring(*g))

        def update(fa=feats_a, fb=feats_b):
            acc = MinibatchCKA([f"a{i}" for i in range(len(fa))], [f"b{i}" for i in range(len(fb))])
            acc.update(fa, fb)
            return acc.result().values

        t_update, values = median(update)
        diff = max(
            (loop - fast).abs().max().item(),
            (loop.cpu() - torch.from_numpy(values)).abs().max().item(),
        )
        figures = (
            width,
            f"{t_gram:.3f}",
            f"{t_loop:.3f}",
            f"{t_all:.3f}",
            f"{t_loop / t_all:.1f}x",
            f"{t_gram + t_loop:.3f}",
            f"{t_update:.3f}",
            f"{(t_gram + t_loop) / t_update:.1f}x",
            f"{diff:.1e}",
        )
        table.add(figures)
        del feats, feats_a, feats_b, grams
    table.close()


if __name__ == "__main__":
    main()
