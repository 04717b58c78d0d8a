"""A one-node Ray cluster on 127.0.0.1 for tests, in its own process (its environment, e.g. token auth,
stays its own): ``python loopback_head.py ADDRESS_FILE``. Writes the address, then shuts the cluster
down when its stdin closes."""
import os
import sys

os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"  # before ray is imported: stay on 127.0.0.1

from ray.cluster_utils import Cluster  # noqa: E402

cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "node_ip_address": "127.0.0.1",
                                                        "include_dashboard": False})
try:
    with open(sys.argv[1] + ".tmp", "w") as out:
        out.write(cluster.address)
    os.replace(sys.argv[1] + ".tmp", sys.argv[1])
    sys.stdin.read()
finally:
    cluster.shutdown()
