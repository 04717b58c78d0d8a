"""Table 4: HFD on/off × BSD on/off, MobileNetV2 + MiT-B1, α = 1, β = 0.1, γ = 1.

    python sweeps/components.py [--preset paper --dataset voc --data-root PATH --seeds 3]
"""
import sys

from cotrain.sweep import VANILLA, SweepSpec, run_sweep

BSD_OFF = {"bsd_region": False, "bsd_pixel": False}
SPEC = SweepSpec(script="components", table="4",
                 cells=[VANILLA,
                        {"method": "ours", "hfd": True, **BSD_OFF},
                        {"method": "ours", "hfd": False, "bsd_region": True, "bsd_pixel": True},
                        {"method": "ours", "hfd": True, "bsd_region": True, "bsd_pixel": True}],
                 fixed={"alpha": 1.0, "beta": 0.1, "gamma": 1.0})

if __name__ == "__main__":
    sys.exit(run_sweep(SPEC, description=__doc__))
