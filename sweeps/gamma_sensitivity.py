"""Table 9: sensitivity of γ (weight of BSD), MobileNetV2 + MiT-B1, HFD off, α = 1.

    python sweeps/gamma_sensitivity.py [--preset paper --dataset voc --data-root PATH --seeds 3]
"""
import sys

from cotrain.sweep import VANILLA, SweepSpec, run_sweep
from cotrain.tables import TableSpec

GAMMAS = (0.1, 0.5, 1.0, 2.0, 5.0)
TABLE = TableSpec("9", "Sensitivity of γ", varies=("gamma",), label_columns=("γ",), paper={"*": "9"})
SPEC = SweepSpec.from_rows(script="gamma_sensitivity", table=TABLE,
                           rows=[(VANILLA, ("Vanilla",))] + [({"method": "ours", "gamma": g}, (repr(g),))
                                                             for g in GAMMAS],
                           fixed={"hfd": False, "alpha": 1.0})

if __name__ == "__main__":
    sys.exit(run_sweep(SPEC, description=__doc__))
