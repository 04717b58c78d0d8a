"""The KubeRay example under deploy/: valid YAML whose RayJob runs one of our scripts with --cluster."""
from __future__ import annotations

import shlex
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
MANIFESTS = sorted((REPO / "deploy").rglob("*.yaml"))


def documents(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def test_there_is_a_kuberay_rayjob():
    kinds = {doc["kind"] for path in MANIFESTS for doc in documents(path)}
    assert "RayJob" in kinds, MANIFESTS


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_rayjob_entrypoint_is_one_of_our_scripts_on_the_cluster(path: Path):
    for doc in documents(path):
        if doc["kind"] != "RayJob":
            continue
        argv = shlex.split(doc["spec"]["entrypoint"])
        assert argv[0] == "python", argv
        script = argv[1:3] if argv[1] == "-m" else argv[1]
        assert script == ["-m", "cotrain.train"] or (REPO / script).is_file() and script.startswith("sweeps/"), argv
        assert "--cluster" in argv
        storage = argv[argv.index("--out" if argv[1] == "-m" else "--storage") + 1]
        mounts = {m["mountPath"] for group in _pod_specs(doc["spec"]["rayClusterSpec"])
                  for c in group["containers"] for m in c.get("volumeMounts", [])}
        # Multi-node sweeps need storage every node sees at the same path.
        assert storage.startswith("s3://") or any(storage.startswith(m + "/") for m in mounts), (storage, mounts)


def _pod_specs(cluster: dict) -> list[dict]:
    groups = [cluster["headGroupSpec"], *cluster.get("workerGroupSpecs", [])]
    return [group["template"]["spec"] for group in groups]
