"""Optuna search over α, β, γ and the HFD / BSD-R / BSD-P switches, after a Vanilla run per seed.

    python sweeps/search.py --objective pareto --seeds 2 --trials 6   # the settings that lift both students
    python sweeps/search.py --objective delta --trials 20             # or miou_cnn, miou_vit, pareto+time
    python sweeps/search.py --trials 20 --asha --objective delta      # one seed, weak runs stopped early

Each setting is trained on seeds 0..N-1 (--seeds) and scored by the mean gain over the Vanilla run of the
same seed; the first setting is the paper's default. Then: python analysis/make_tables.py
"""
import sys

from cotrain.search import run_search

if __name__ == "__main__":
    sys.exit(run_search(description=__doc__))
