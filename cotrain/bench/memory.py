"""Peak memory of a step case: the CUDA allocator's, or the process's RSS high-water mark."""
from __future__ import annotations

import resource
import sys
from pathlib import Path


class PeakMemory:
    """Peak memory above the footprint at ``start()``: CUDA allocator or process RSS high-water mark."""

    def __init__(self, device_type: str) -> None:
        self.cuda = device_type == "cuda"

    def start(self) -> None:
        import torch
        if self.cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.base = torch.cuda.memory_allocated()
            return
        self.base = _rss_kb() * 1024
        try:  # "5" resets the high-water mark (VmHWM, and ru_maxrss with it) to the current RSS
            Path("/proc/self/clear_refs").write_text("5")
        except OSError:
            self.base = _maxrss_bytes()  # cannot reset: measure above the high-water mark so far

    def peak(self) -> tuple[float, float]:
        """(peak above the start, absolute peak), in MiB."""
        import torch
        if self.cuda:
            torch.cuda.synchronize()
            top = torch.cuda.max_memory_allocated()
        else:
            top = _maxrss_bytes()
        return max(top - self.base, 0) / 2**20, top / 2**20


def _maxrss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * (1 if sys.platform == "darwin" else 1024)


def _rss_kb() -> int:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return _maxrss_bytes() // 1024
