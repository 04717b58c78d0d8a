"""Optuna search over α, β, γ and the HFD / BSD-R / BSD-P switches, with optional ASHA early stopping.

    python sweeps/search.py --trials 20 --asha --objective delta     # or miou_cnn, miou_vit
"""
import sys

from cotrain.search import run_search

if __name__ == "__main__":
    sys.exit(run_search(description=__doc__))
