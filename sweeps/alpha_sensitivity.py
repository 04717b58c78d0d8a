"""Table 7: sensitivity of α (weight of pixel-wise BSD), MobileNetV2 + MiT-B1, HFD off, γ = 1.

    python sweeps/alpha_sensitivity.py                 # built-in data, cpu preset
    python sweeps/alpha_sensitivity.py --cluster --dataset voc --data-root ~/data/VOCdevkit --preset paper --seeds 3
"""
import sys

from cotrain.sweep import VANILLA, SweepSpec, run_sweep
from cotrain.tables import TableSpec

ALPHAS = (0.1, 0.5, 1.0, 2.0, 5.0)
TABLE = TableSpec("7", "Sensitivity of α", varies=("alpha",), label_columns=("α",), paper={"*": "7"})
SPEC = SweepSpec.from_rows(script="alpha_sensitivity", table=TABLE,
                           rows=[(VANILLA, ("Vanilla",))] + [({"method": "ours", "alpha": a}, (repr(a),))
                                                             for a in ALPHAS],
                           fixed={"hfd": False, "gamma": 1.0})

if __name__ == "__main__":
    sys.exit(run_sweep(SPEC, description=__doc__))
