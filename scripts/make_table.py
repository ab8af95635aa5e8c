"""Runs -> the paper's table: `python scripts/make_table.py outputs/train_multirun/<date> [run ...] --out table`.

Prints markdown; `--out PREFIX` also writes PREFIX.md and PREFIX.csv. See vop/tools/make_table.py.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from vop.errors import ArgumentParser  # noqa: E402

from vop.tools.make_table import make_table  # noqa: E402


def main() -> None:
    parser = ArgumentParser(description=__doc__)
    parser.add_argument("runs", nargs="+", help="run directories or folders holding runs (a Hydra multirun)")
    parser.add_argument("--out", help="write OUT.md and OUT.csv as well")
    args = parser.parse_args()
    print(make_table(args.runs, args.out), end="")


if __name__ == "__main__":
    main()
