"""Does a tiny-CLIP checkpoint see where the shape is? The synthetic benchmark's direction probe needs it. (see vop/tools/position_readout.py)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere without installing
from vop.tools.position_readout import main  # noqa: E402

if __name__ == "__main__":
    main()
