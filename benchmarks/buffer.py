"""Benchmark the ExIt curriculum's host and device overhead; prints median times.

    python benchmarks/buffer.py [--size 100000] [--prompts 128] [--group 8] [--repeats 50]

Host: TaskBuffer.sample / insert / update_scores on a full buffer of ``--size`` entries (target:
  each < 5 ms), and a
whole curriculum round (select_batch + update_buffer) for one batch of ``--prompts`` x ``--group``
rollouts.
Device: the diversity kernel for ``[--div-batch, --div-dim]`` embeddings on all local devices.
"""

from __future__ import annotations

import argparse
import statistics
import time

import jax
import numpy as np

from exit_jax.curriculum.buffer import TaskBuffer
from exit_jax.curriculum.config import CurriculumSettings
from exit_jax.curriculum.diversity import diversity_coefficients
from exit_jax.curriculum.selection import select_batch, update_buffer
from exit_jax.types import Episode, Grade, Instance, Message


def median_ms(fn, repeats: int) -> float:
    """Median milliseconds per call: process CPU time for host code (robust on a shared machine)."""
    times = []
    for _ in range(repeats):
        start = time.process_time()
        fn()
        times.append((time.process_time() - start) * 1e3)
    return statistics.median(times)


def median_wall_ms(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def make_instance(index: int, response_chars: int = 2000) -> Instance:
    body = f"solution {index} " + "x" * response_chars
    return Instance(task_id=f"task-{index % 1280}", previous_response=body, iterate=1, depth=1,
                    mode="improve")


def filled_buffer(size: int, seed: int = 0) -> TaskBuffer:
    buffer = TaskBuffer(size, seed=seed)
    rng = np.random.default_rng(seed)
    chunk = 10_000
    for start in range(0, size, chunk):
        count = min(chunk, size - start)
        instances = [make_instance(start + i, response_chars=200) for i in range(count)]
        buffer.insert(instances, rng.integers(0, 9, size=count) / 36.0)
    return buffer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--prompts", type=int, default=128)
    parser.add_argument("--group", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--div-batch", type=int, default=64)
    parser.add_argument("--div-dim", type=int, default=256)
    args = parser.parse_args()

    settings = CurriculumSettings(buffer_size=args.size, min_buffer_size=1)
    buffer = filled_buffer(args.size)
    rng = np.random.default_rng(1)
    print(f"buffer N={args.size} (full: {len(buffer)}), "
          f"batch {args.prompts} prompts x G={args.group}")

    for prioritization in ("softmax", "rank"):
        config = CurriculumSettings(buffer_size=args.size, min_buffer_size=1,
                                    prioritization=prioritization, staleness_coef=0.0)
        ms = median_ms(lambda config=config: buffer.sample(args.prompts, config, rng), args.repeats)
        print(f"sample {args.prompts} ({prioritization}): {ms:.3f} ms")

    counter = iter(range(10**9))
    for count in (args.prompts, args.prompts * args.group):
        batches = [[make_instance(10**7 + (next(counter) * count) + i) for i in range(count)]
                   for _ in range(args.repeats)]
        keys = iter([[inst.content_key() for inst in batch] for batch in batches])
        batch_iter = iter(batches)
        first = batches[0]
        hashing = median_ms(lambda first=first: [i.content_key() for i in first], args.repeats)

        def insert(count=count, batch_iter=batch_iter, keys=keys):
            buffer.insert(next(batch_iter), rng.random(count) * 0.25, content_keys=next(keys))
        print(f"insert {count} (full buffer, eviction; keys precomputed): "
              f"{median_ms(insert, args.repeats):.3f} ms; content_key() of {count} 2 kB "
              f"responses: {hashing:.3f} ms")

    def update():
        ids = buffer.ids()[rng.integers(0, len(buffer), size=args.prompts)]
        buffer.update_scores(ids, rng.random(args.prompts) * 0.25)
    print(f"update {args.prompts} scores: {median_ms(update, args.repeats):.3f} ms")

    base_ids = [f"task-{i}" for i in range(1280)]
    quality = rng.integers(0, 2, size=(args.prompts, args.group)).astype(float)

    rounds = max(5, args.repeats // 5)
    grades = [[Grade(q, q) for q in row] for row in quality.tolist()]
    children = iter([[[make_instance(next(counter)) for _ in range(args.group)]
                      for _ in range(args.prompts)] for _ in range(rounds)])
    transcript = [Message("assistant", "r")]

    def round_trip():
        selection = select_batch(buffer, base_ids, args.prompts, settings, buffer.rng)
        round_children = next(children)
        episodes = [[Episode(inst, transcript, grades[i][g], [round_children[i][g]])
                     for g in range(args.group)] for i, inst in enumerate(selection.instances)]
        update_buffer(buffer, selection, quality, episodes, settings, buffer.rng)
    print(f"curriculum round (select + update, {args.prompts * args.group} children incl. "
          f"content_key()): {median_ms(round_trip, rounds):.3f} ms")

    devices = jax.devices()
    mesh = jax.make_mesh((len(devices),), ("data",), axis_types=(jax.sharding.AxisType.Auto,))
    embeddings = jax.device_put(np.random.default_rng(2).normal(
        size=(args.div_batch, args.div_dim)).astype(np.float32))
    kernel = lambda: diversity_coefficients(embeddings, args.group, mesh=mesh).block_until_ready()
    kernel()  # compile
    wall_us = median_wall_ms(kernel, args.repeats) * 1e3
    print(f"diversity kernel [{args.div_batch}, {args.div_dim}] on {len(devices)} "
          f"{devices[0].platform} device(s): {wall_us:.1f} us (wall)")


if __name__ == "__main__":
    main()
