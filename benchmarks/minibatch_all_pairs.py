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
import statistics
import time

import torch

from repcompare.similarity import MinibatchCKA, gram, hsic_unbiased, u_centre


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(fn, device: torch.device, repeats: int):
    """(median seconds, last result) over ``repeats`` calls."""
    times, result = [], None
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        result = fn()
        sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


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
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    args = parser.parse_args()
    device = torch.device(
        ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    )
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(
        f"device: {name}, torch {torch.__version__}, threads {torch.get_num_threads()}, "
        f"{args.layers} x {args.layers} layers, batch {args.batch}, median of {args.repeats}\n"
    )
    print(
        "| width | Grams (s) | per-pair scoring (s) | all-pairs scoring (s) | speed-up "
        "(scoring) | per-pair total (s) | accumulator update (s) | speed-up (total) "
        "| max abs diff |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    gen = torch.Generator(device=device).manual_seed(0)
    for width in (int(w) for w in args.widths.split(",")):
        feats = [
            torch.relu(torch.randn(args.batch, width, generator=gen, device=device)) + 1
            for _ in range(2 * args.layers)
        ]
        feats_a, feats_b = feats[: args.layers], feats[args.layers :]
        t_gram, grams = timed(
            lambda fa=feats_a, fb=feats_b: ([gram(x) for x in fa], [gram(y) for y in fb]),
            device,
            args.repeats,
        )
        t_loop, loop = timed(lambda g=grams: per_pair_loop(*g), device, args.repeats)
        t_all, fast = timed(lambda g=grams: all_pairs_scoring(*g), device, args.repeats)

        def update(fa=feats_a, fb=feats_b):
            acc = MinibatchCKA([f"a{i}" for i in range(len(fa))], [f"b{i}" for i in range(len(fb))])
            acc.update(fa, fb)
            return acc.result().values

        t_update, values = timed(update, device, args.repeats)
        diff = max(
            (loop - fast).abs().max().item(),
            (loop.cpu() - torch.from_numpy(values)).abs().max().item(),
        )
        print(
            f"| {width} | {t_gram:.3f} | {t_loop:.3f} | {t_all:.3f} | {t_loop / t_all:.1f}x "
            f"| {t_gram + t_loop:.3f} | {t_update:.3f} | {(t_gram + t_loop) / t_update:.1f}x "
            f"| {diff:.1e} |",
            flush=True,
        )
        del feats, feats_a, feats_b, grams


if __name__ == "__main__":
    main()
