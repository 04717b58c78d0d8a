"""Puts this folder on sys.path so the tests import ``reliability_helpers``."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
