"""Connecting to a running Ray cluster (``--cluster``): its address, reachability and authentication mode."""
from __future__ import annotations

import os
import sys

from cotrain.config import is_uri
from cotrain.errors import ClusterError
from cotrain.launch.env import worker_runtime_env


def _connect_cluster(ray) -> None:
    address = _cluster_address()
    if not is_uri(address):  # ray:// (Ray Client) does its own handshake
        _require_reachable(address)
        _match_auth_mode(address)
    try:
        ray.init(address=address, logging_level="warning", runtime_env=worker_runtime_env())
    except ConnectionError as exc:
        raise ClusterError(f"--cluster: no Ray cluster at {address!r} ({exc}); start one with "
                           "'ray start --head' or set RAY_ADDRESS=host:port") from exc


def _cluster_address() -> str:
    """``RAY_ADDRESS``, else the running local head Ray finds (its address file)."""
    from ray._private.services import canonicalize_bootstrap_address
    address = os.environ.get("RAY_ADDRESS") or "auto"
    if address != "auto":
        return address
    try:
        found = canonicalize_bootstrap_address("auto")
    except ConnectionError:
        found = None
    if not found:
        raise ClusterError("--cluster: no running Ray cluster found on this machine; start one with "
                           "'ray start --head' or set RAY_ADDRESS=host:port")
    return found


def _match_auth_mode(address: str) -> None:
    """Use token authentication exactly when the cluster at ``address`` does.

    A mismatch fails late and obscurely: without a token, ~20 s of retries then a ConnectionError;
    with one against a cluster without authentication, every actor dies as it starts.
    """
    from ray._raylet import AuthenticationTokenLoader

    asked = os.environ.get("RAY_AUTH_MODE")
    if not _gcs_refuses("disabled", address):
        if asked == "token":
            print(f"note: the Ray cluster at {address} has no token authentication; connecting without a "
                  "token (RAY_AUTH_MODE=token ignored)", file=sys.stderr)
        return
    if not AuthenticationTokenLoader.instance().has_token(ignore_auth_mode=True):
        raise ClusterError(f"--cluster: the Ray cluster at {address} requires token authentication and no "
                           "token was found here; copy the head's ~/.ray/auth_token to this machine or set "
                           "RAY_AUTH_TOKEN")
    if _gcs_refuses("token", address):
        raise ClusterError(f"--cluster: the Ray cluster at {address} refused this machine's token; use the "
                           "head's ~/.ray/auth_token (or RAY_AUTH_TOKEN / RAY_AUTH_TOKEN_PATH)")


def _gcs_refuses(auth_mode: str, address: str) -> bool:
    """Whether the cluster's GCS refuses a client in ``auth_mode`` (the mode stays set for ray.init)."""
    from ray._raylet import AuthenticationTokenLoader, Config, GcsClient
    from ray.exceptions import AuthenticationError

    os.environ["RAY_AUTH_MODE"] = auth_mode
    Config.initialize("")  # Ray caches its config; re-read the mode, as Ray's own token setup does
    AuthenticationTokenLoader.instance().reset_cache()
    try:
        GcsClient(address=address)
    except AuthenticationError:
        return True
    return False


def _require_reachable(address: str, timeout: float = 5.0) -> None:
    """Fail in seconds when nothing listens at ``host:port`` (ray.init would retry for minutes)."""
    import socket
    host, _, port = address.rpartition(":")
    try:
        socket.create_connection((host.strip("[]") or "127.0.0.1", int(port)), timeout=timeout).close()
    except (OSError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc) or type(exc).__name__
        raise ClusterError(f"--cluster: no Ray cluster at {address!r} ({reason}); start one with "
                           "'ray start --head' or set RAY_ADDRESS=host:port") from exc
