"""Data generation throughput: samples/s for 4 views x 30 frames at 128^2 and 512^2, with 2 worker processes,
and the projected time for the paper-sized data set (450 x 10 + 46 x 2 samples, + val).

    python benchmarks/bench_data.py [--samples 8] [--samples-512 2] [--workers 2]
"""
from __future__ import annotations

import argparse
import tempfile

from training.data.generate import PAPER_SIZES, generate_dataset, plan_samples
from training.data.sample import SampleConfig


def measure(resolution: int, num_samples: int, workers: int) -> float:
    tasks = plan_samples({"train": (num_samples, 1)}, seed=123)
    with tempfile.TemporaryDirectory() as root:
        report = generate_dataset(root, tasks, SampleConfig(resolution=resolution), workers=workers, progress=False,
                                  log=lambda *_: None)
    if report["failed"]:
        raise RuntimeError(f"failures: {report['failed']}")
    return report["samples_per_second"], report["cpu_seconds_per_sample"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--samples", type=int, default=8, help="samples measured at 128^2")
    p.add_argument("--samples-512", type=int, default=1, help="samples measured at 512^2")
    p.add_argument("--workers", type=int, default=2)
    args = p.parse_args()
    total = sum(o * s for o, s in PAPER_SIZES.values())
    for res, n in ((128, args.samples), (512, args.samples_512)):
        if n <= 0:
            continue
        rate, cpu = measure(res, n, args.workers)
        # Wall rate depends on what else runs on the machine; CPU seconds per sample do not.
        dedicated = args.workers / cpu
        print(f"{res}^2: {rate:.3f} samples/s measured with {args.workers} workers; {cpu:.1f} CPU s per sample "
              f"-> {dedicated:.3f} samples/s on {args.workers} dedicated cores; paper-sized set ({total} samples): "
              f"{total / dedicated / 3600:.2f} h (target at 128^2: <= 3 h)")


if __name__ == "__main__":
    main()
