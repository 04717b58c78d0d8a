"""Tables 1-3: Vanilla, Offline KD, DML, KDCL, IFVD and Ours for MobileNetV2 + MiT-B1 and ResNet-50 + MiT-B2.

Runs in two stages: the Vanilla trials first (experiment NAME), then the other methods
(experiment NAME-kd), offline KD taught by the Vanilla checkpoint of the same pair and seed.
The table follows from --dataset: voc -> Table 1, cityscapes -> Table 2, camvid -> Table 3.

    python sweeps/methods.py                                   # built-in data, small students
    python sweeps/methods.py --dataset cityscapes --data-root ~/data/cityscapes --preset paper --cluster
"""
import sys

from cotrain.methods import METHODS
from cotrain.sweep import SweepSpec, run_sweep
from cotrain.tables import TableSpec

# Every registered method (a new one joins the table as a measured row), the paper's order first.
PAPER_ORDER = ("offline_kd", "dml", "kdcl", "ifvd", "ours")
KD_METHODS = [m for m in PAPER_ORDER if m in METHODS] + [m for m in METHODS if m not in (*PAPER_ORDER, "vanilla")]
TABLE = TableSpec("methods", "Comparison with the SoTA KD methods",
                  paper={"voc": "1", "cityscapes": "2", "camvid": "3"})
SPEC = SweepSpec.from_rows(script="methods", table=TABLE,
                           rows=[({"method": m}, (METHODS[m].display_name,)) for m in ["vanilla", *KD_METHODS]],
                           pairs=("mobilenet_v2+mit_b1", "resnet50+mit_b2"), staged=True)

if __name__ == "__main__":
    sys.exit(run_sweep(SPEC, description=__doc__))
