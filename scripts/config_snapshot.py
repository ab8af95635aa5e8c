"""Write the composed config of every method x dataset pair (train.py), resolved, as JSON. (see vop/tools/config_snapshot.py)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere without installing
from vop.tools.config_snapshot import main  # noqa: E402

if __name__ == "__main__":
    main()
