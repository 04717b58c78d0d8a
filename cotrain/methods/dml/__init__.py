"""DML: "Deep Mutual Learning" (Zhang, Xiang, Hospedales, Lu, CVPR 2018).

L^C = CE^C + w·T²·KL(p^V ‖ p^C) and L^V = CE^V + w·T²·KL(p^C ‖ p^V), mean over valid pixels,
the other student detached.
"""
from cotrain.methods.options import LogitKDOptions
from cotrain.methods.registry import declare_method

declare_method("dml", "cotrain.methods.dml.method:DML", LogitKDOptions, "DML")
