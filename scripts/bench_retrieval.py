"""Query latency and memory of the retrieval indexes on random 512-d galleries, side by side. (see vop/tools/bench_retrieval.py)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere without installing
from vop.tools.bench_retrieval import main  # noqa: E402

if __name__ == "__main__":
    main()
