"""Table 4: HFD on/off × BSD on/off, MobileNetV2 + MiT-B1, α = 1, β = 0.1, γ = 1.

    python sweeps/components.py [--preset paper --dataset voc --data-root PATH --seeds 3]
"""
import sys

from cotrain.sweep import VANILLA, SweepSpec, run_sweep
from cotrain.tables import TableSpec

BSD_ON = {"bsd_region": True, "bsd_pixel": True}
BSD_OFF = {"bsd_region": False, "bsd_pixel": False}
TABLE = TableSpec("4", "Ablation of HFD and BSD", varies=("hfd", "bsd_region", "bsd_pixel"),
                  label_columns=("L_s", "L_HFD", "L_BSD"), paper={"*": "4"})
SPEC = SweepSpec.from_rows(script="components", table=TABLE,
                           rows=[(VANILLA, ("✓", "✗", "✗")),
                                 ({"method": "ours", "hfd": True, **BSD_OFF}, ("✓", "✓", "✗")),
                                 ({"method": "ours", "hfd": False, **BSD_ON}, ("✓", "✗", "✓")),
                                 ({"method": "ours", "hfd": True, **BSD_ON}, ("✓", "✓", "✓"))],
                           fixed={"alpha": 1.0, "beta": 0.1, "gamma": 1.0})

if __name__ == "__main__":
    sys.exit(run_sweep(SPEC, description=__doc__))
