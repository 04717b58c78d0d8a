"""``python -m cotrain.bench``: see ``cotrain.bench.cli``."""
import sys

from cotrain.bench.cli import main

if __name__ == "__main__":  # spawned case processes import this module as __mp_main__: they must not rerun it
    sys.exit(main())
