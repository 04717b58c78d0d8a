"""Layering (issue #16): the run config and the method declarations import no torch and nothing above them."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

from tests.conftest import REPO

PROBE = textwrap.dedent('''
    import json, sys
    import cotrain.config, cotrain.methods, cotrain.options
    from cotrain.methods import options_for

    fields = [f.name for f in cotrain.config.dataclasses.fields(cotrain.config.TrainConfig)]
    options_for("ours", {"alpha": 0.5})
    before = sorted(m for m in sys.modules if m == "torch" or m.startswith("cotrain"))
    cotrain.config.TrainConfig()  # validating the encoder and dataset names reads their registries
    cotrain.methods.get_method("ours")
    print(json.dumps({"fields": fields, "methods": list(cotrain.methods.METHODS), "before": before,
                      "after": sorted(sys.modules)}))
''')

# What importing the run config may load: the error types, the config, the option helpers, the plugin loader,
# the method declarations.
ALLOWED = {"cotrain", "cotrain.errors", "cotrain.config", "cotrain.options", "cotrain.plugins", "cotrain.methods",
           "cotrain.methods.options", "cotrain.methods.registry"}


def _probe() -> dict:
    env = {k: v for k, v in os.environ.items() if k != "COTRAIN_PLUGINS"}
    done = subprocess.run([sys.executable, "-c", PROBE], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


def test_config_and_method_declarations_load_no_torch():
    seen = _probe()
    assert "alpha" in seen["fields"] and "kdcl_mode" in seen["fields"]
    assert "torch" not in seen["before"]
    declarations = {f"cotrain.methods.{name}" for name in seen["methods"]}
    extra = [m for m in seen["before"] if m not in ALLOWED | declarations]
    assert not extra, f"importing cotrain.config loaded {extra}"
    assert "cotrain.methods.ours.method" in seen["after"]  # the implementation, on first get_method


# Layers, bottom first: an import may only point to its own layer or below (issue #16). The method
# declarations (cotrain.methods and its packages' __init__) sit with the config; their method.py files
# sit above the models, losses and data they use.
LAYERS = [
    {"errors", "options", "tables", "config", "plugins", "portable", "methods", "methods.registry",
     "methods.options"},
    {"models", "losses", "data"},
    {"methods.base", "methods.teachers", "methods.*.method"},
    {"pair"},
    {"engine", "estimate", "provenance"},
    {"launch", "bench"},
    {"cli", "bench_gpu", "bench_overhead"},
    {"train", "sweep", "weights"},
    {"search"},
]
# Deliberate: the config validates encoder and dataset names against their registries, imported inside the
# check, so that importing the config loads no torch.
# And cotrain.methods hands out Method and PairContext on first attribute access (module __getattr__).
LAZY_EXCEPTIONS = {("cotrain.config", "cotrain.models.registry"), ("cotrain.config", "cotrain.data"),
                   ("cotrain.methods", "cotrain.methods.base")}


def _layer(module: str) -> int:
    parts = module.split(".")[1:]
    if len(parts) >= 3 and parts[0] == "methods" and parts[2] == "method":
        parts = ["methods", "*", "method"]
    for size in (3, 2, 1):
        key = ".".join(parts[:size])
        for index, layer in enumerate(LAYERS):
            if key in layer:
                return index
    raise AssertionError(f"{module} has no layer in LAYERS")


def _imports(path) -> list[tuple[str, int]]:
    import ast
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("cotrain."):
            found.append((node.module, node.lineno))
        elif isinstance(node, ast.Import):
            found += [(a.name, node.lineno) for a in node.names if a.name.startswith("cotrain.")]
    return found


def test_no_import_runs_upward():
    upward = []
    for path in sorted((REPO / "cotrain").rglob("*.py")):
        parts = path.relative_to(REPO).with_suffix("").parts
        module = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        if module == "cotrain":
            continue
        for target, line in _imports(path):
            if _layer(target) > _layer(module) and (module, target) not in LAZY_EXCEPTIONS:
                upward.append(f"{path.relative_to(REPO)}:{line} imports {target}")
    assert not upward, upward


MODELS_PROBE = textwrap.dedent('''
    import json, sys
    import cotrain.errors
    errors_loaded = sorted(m for m in sys.modules if m == "torch" or m.startswith("cotrain"))
    import cotrain.models, cotrain.models.weights  # the package's __init__ does not import weights
    print(json.dumps({"errors": errors_loaded, "models": sorted(m for m in sys.modules if m.startswith("cotrain"))}))
''')


def test_models_load_no_run_config_and_errors_load_nothing_of_cotrain():
    # Issue #25: the error types sit in one bottom module, so the models need not import the run config.
    env = {k: v for k, v in os.environ.items() if k != "COTRAIN_PLUGINS"}
    done = subprocess.run([sys.executable, "-c", MODELS_PROBE], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.splitlines()[-1])
    assert seen["errors"] == ["cotrain", "cotrain.errors"], seen["errors"]
    assert "cotrain.models.weights" in seen["models"]
    assert "cotrain.config" not in seen["models"], seen["models"]
