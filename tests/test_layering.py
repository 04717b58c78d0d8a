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

# What importing the run config may load: the config, the option helpers, the plugin loader, the method declarations.
ALLOWED = {"cotrain", "cotrain.config", "cotrain.options", "cotrain.plugins", "cotrain.methods",
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
