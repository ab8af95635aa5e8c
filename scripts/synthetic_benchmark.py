"""A two-stage synthetic benchmark that ranks the tuning methods on a CPU in minutes. (see vop/tools/synthetic_benchmark.py)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere without installing
from vop.tools.synthetic_benchmark import main  # noqa: E402

if __name__ == "__main__":
    main()
