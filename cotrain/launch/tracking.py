"""MLflow tracking (``--mlflow``): the Tune callback, the local SQLite store, the server check."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

from cotrain.config import is_uri
from cotrain.errors import ConfigError


def mlflow_callback(uri: Optional[str], storage: str, experiment: str):
    """Tune callback logging every trial's params and metrics to MLflow (``--mlflow``).

    ``uri`` empty: a local SQLite store ``<storage>/mlflow.db`` (MLflow 3 refuses new ``./mlruns``
    file stores); local storage only. Needs ``mlflow`` (``pip install -e ".[mlflow]"``).
    """
    import logging
    try:
        import mlflow  # noqa: F401  (Ray imports it lazily; fail before any trial starts)
        from ray.air.integrations.mlflow import MLflowLoggerCallback
    except ImportError as exc:
        raise ConfigError("--mlflow needs mlflow: pip install -e '.[mlflow]'") from exc
    if not uri:
        if is_uri(storage):
            raise ConfigError(f"--mlflow without a URI needs local storage, not {storage}; pass --mlflow URI")
        uri = f"sqlite:///{Path(storage, 'mlflow.db').resolve()}"
    require_tracking_server(uri)
    logging.getLogger("mlflow").setLevel(logging.WARNING)  # its database set-up lines
    if uri.startswith("sqlite:///"):
        create_local_store(uri)
    return MLflowLoggerCallback(tracking_uri=uri, experiment_name=experiment, save_artifact=False)


def create_local_store(uri: str) -> None:
    """Create a SQLite MLflow store's tables now, holding ``<db>.lock``: two sweeps started together in one
    storage both ran MLflow's schema migration on the new ``mlflow.db`` and one died in it (alembic
    ``CommandError``). The store stays open in this process for the Tune callback."""
    import fcntl

    from mlflow.tracking import MlflowClient
    database = Path(uri[len("sqlite:///"):])
    database.parent.mkdir(parents=True, exist_ok=True)
    with open(database.with_name(database.name + ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes (or the process dies)
        MlflowClient(tracking_uri=uri).search_experiments(max_results=1)


def require_tracking_server(uri: str, timeout: float = 5.0) -> None:
    """An ``http(s)://`` MLflow tracking URI must answer before any trial starts (MLflow itself retries for
    minutes); any HTTP answer counts, an error status included. Other URIs (sqlite, file...) pass."""
    import urllib.error
    import urllib.request
    if not uri.lower().startswith(("http://", "https://")):
        return
    try:
        urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=timeout).close()
    except urllib.error.HTTPError:
        return  # a server answered
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or exc
        reason = getattr(reason, "strerror", None) or str(reason) or type(exc).__name__
        raise ConfigError(f"--mlflow {uri}: no MLflow tracking server answers there ({reason}); start it "
                          "(mlflow server --host HOST --port PORT), fix the URI, or give --mlflow without a URI "
                          "for a local store") from exc
