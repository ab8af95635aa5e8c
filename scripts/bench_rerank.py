"""Two-stage search of a text-conditioned pooling (method=xpool) against the exhaustive ranking: recall@10 and time per query for several shortlist sizes K (see vop/tools/bench_rerank.py)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere without installing
from vop.tools.bench_rerank import main  # noqa: E402

if __name__ == "__main__":
    main()
