"""Table 6: Vanilla vs Ours for students of different capacity: MobileNetV2 + MiT-B2 and ResNet-50 + MiT-B1.

    python sweeps/pairs.py [--preset paper --dataset voc --data-root PATH --seeds 3]
"""
import sys

from cotrain.sweep import VANILLA, SweepSpec, run_sweep
from cotrain.tables import TableSpec

TABLE = TableSpec("6", "Comparison with Vanilla for other pairs", paper={"*": "6"})
SPEC = SweepSpec.from_rows(script="pairs", table=TABLE, rows=[(VANILLA, ("Vanilla",)), ({"method": "ours"}, ("Ours",))],
                           pairs=("mobilenet_v2+mit_b2", "resnet50+mit_b1"))

if __name__ == "__main__":
    sys.exit(run_sweep(SPEC, description=__doc__))
