"""Search latency: the served API against the in-process pipeline, and exact fp32 / fp16 / IVF search
on 100k and 1M clustered embeddings, side by side: `python scripts/bench_serve.py` (vop/tools/bench_serve.py)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere without installing
from vop.tools.bench_serve import main  # noqa: E402

if __name__ == "__main__":
    main()
