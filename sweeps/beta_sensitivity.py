"""Table 8: sensitivity of β (weight of HFD), MobileNetV2 + MiT-B1, BSD off.

    python sweeps/beta_sensitivity.py [--preset paper --dataset voc --data-root PATH --seeds 3]
"""
import sys

from cotrain.sweep import VANILLA, SweepSpec, run_sweep
from cotrain.tables import TableSpec

BETAS = (0.05, 0.1, 0.5, 1.0)
TABLE = TableSpec("8", "Sensitivity of β", varies=("beta",), label_columns=("β",), paper={"*": "8"})
SPEC = SweepSpec.from_rows(script="beta_sensitivity", table=TABLE,
                           rows=[(VANILLA, ("Vanilla",))] + [({"method": "ours", "beta": b}, (repr(b),))
                                                             for b in BETAS],
                           fixed={"hfd": True, "bsd_region": False, "bsd_pixel": False})

if __name__ == "__main__":
    sys.exit(run_sweep(SPEC, description=__doc__))
