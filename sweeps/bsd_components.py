"""Table 5: BSD-R on/off × BSD-P on/off, MobileNetV2 + MiT-B1, HFD off.

    python sweeps/bsd_components.py [--preset paper --dataset voc --data-root PATH --seeds 3]
"""
import sys

from cotrain.sweep import VANILLA, SweepSpec, run_sweep
from cotrain.tables import TableSpec

TABLE = TableSpec("5", "Ablation of the two components of BSD", varies=("bsd_region", "bsd_pixel"),
                  label_columns=("L_R", "L_P"), paper={"*": "5"})
SPEC = SweepSpec.from_rows(script="bsd_components", table=TABLE,
                           rows=[(VANILLA, ("✗", "✗")),
                                 ({"method": "ours", "bsd_region": True, "bsd_pixel": False}, ("✓", "✗")),
                                 ({"method": "ours", "bsd_region": False, "bsd_pixel": True}, ("✗", "✓")),
                                 ({"method": "ours", "bsd_region": True, "bsd_pixel": True}, ("✓", "✓"))],
                           fixed={"hfd": False})

if __name__ == "__main__":
    sys.exit(run_sweep(SPEC, description=__doc__))
