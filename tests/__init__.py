"""Test package marker: lets tests/test_bench.py and tests/data/test_bench.py share a basename."""
