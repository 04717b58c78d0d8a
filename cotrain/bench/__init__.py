"""``python -m cotrain.bench``: what HFD and BSD cost over training the students side by side.

settings.py  Settings, the step cases (PAIR_CASES; CASES from ``cotrain.estimate``), each case's TrainConfig
cases.py     the step cases, each measured in a fresh child process (measure_case, measure_eval)
memory.py    PeakMemory: CUDA allocator or RSS high-water mark above the built model
driver.py    run_benchmark: every case over rotated repeats, then loader and eval throughput
report.py    the printed table, the CSV, the step-time cache ``cotrain.estimate`` reads
cli.py       the command line (``__main__.py`` runs it)

Nothing here imports torch at import time: the cases import it in their child processes.
"""
from cotrain.bench.cases import SoloStudent, measure_case, measure_eval, synthetic_batch
from cotrain.bench.cli import build_parser, main, settings_from_args
from cotrain.bench.driver import run_benchmark
from cotrain.bench.memory import PeakMemory
from cotrain.bench.report import format_table, update_cache, write_csv
from cotrain.bench.settings import COLUMNS, PAIR_CASES, SMOKE, Settings, case_config, resolved_dtype
from cotrain.estimate import CASES

__all__ = ["CASES", "COLUMNS", "PAIR_CASES", "SMOKE", "PeakMemory", "Settings", "SoloStudent", "build_parser",
           "case_config", "format_table", "main", "measure_case", "measure_eval", "resolved_dtype", "run_benchmark",
           "settings_from_args", "synthetic_batch", "update_cache", "write_csv"]
