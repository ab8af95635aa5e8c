"""Decoding speed: `python scripts/bench_decode.py [--rounds 3] [--frames 12] [--size 224]`.

Prints videos/s for every decoder and for X-Pool's OpenCV loader on the same videos, side by
side in one run, and the ratios to OpenCV (see vop/tools/bench_decode.py).
"""
import platform
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere without installing
from vop.errors import ArgumentParser  # noqa: E402
from vop import ROOT  # noqa: E402
from vop.tools.bench_decode import bench_videos, methods, report, run_bench  # noqa: E402


def main() -> None:
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="passes over every video per method")
    parser.add_argument("--frames", type=int, default=12, help="frames sampled per video (uniform)")
    parser.add_argument("--size", type=int, default=224, help="short side / square size the workers ship")
    parser.add_argument("--seconds", type=int, default=20, help="length of the generated videos")
    parser.add_argument("--video-dir", type=Path, default=ROOT / "data" / "bench_videos")
    args = parser.parse_args()
    torch.set_num_threads(1)  # as in a data worker
    videos = bench_videos(args.video_dir, args.seconds)
    readers = methods(args.size)
    seconds, agreement = run_bench(videos, readers, args.frames, args.rounds)
    print(f"{platform.processor() or platform.machine()}, torch threads 1, {args.frames} frames -> "
          f"{args.size}x{args.size}, {args.rounds} rounds")
    print(report(videos, seconds, agreement, args.rounds))


if __name__ == "__main__":
    main()
