"""vop: parameter-efficient tuning of CLIP for text-video retrieval.

The package root imports nothing of the project (tests/test_layers.py): `import vop.<anything>` runs
this file first, so whatever it imported would sit under every layer. The `${vop.*}` resolvers the
config files call are registered by vop/config/resolvers.py (and `${vop.run_name:...}`, which reads a
checkpoint, by vop/engine/rundir.py in the Hydra mains).
"""
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]  # the repository: configs/, data/, outputs/ sit below it
