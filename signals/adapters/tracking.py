"""MLflow helpers shared by every entry point: tracking URI / experiment setup, git and config
provenance, dataset logging with a full-data digest, batch logging, and the per-trial run logger.

Nothing here runs at import time; ``mlflow`` itself is imported lazily so the library stays cheap
to import. Run *management* (which runs exist, how they nest) is decided by ``entrypoints/``;
these are the building blocks.
"""

from __future__ import annotations

import getpass
import json
import logging
import math
import os
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

import pandas as pd
import yaml

from signals.core.digest import frame_digest
from signals.core.redaction import redact_mapping, redact_value
from signals.settings.model import ConfigError

if TYPE_CHECKING:
    from signals.modeling.tuning.objective import TrialRecord
    from signals.settings.model import Settings

log = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parents[2]  # the checkout holding the package (git provenance)

# Run tags (one place, so search filters and writers agree)
TAG_STEP = "signals.step"
TAG_WINDOW = "signals.window"
TAG_GIT_COMMIT = "signals.git_commit"
TAG_GIT_DIRTY = "signals.git_dirty"
TAG_GIT_BRANCH = "signals.git_branch"
TAG_FEATURE_VERSION = "signals.feature_version"
TAG_DATA_DIGEST = "signals.data_digest"
TAG_DATA_PROVIDER = "signals.data_provider"
TAG_DATA_SYNTHETIC = "signals.data_synthetic_tables"
TAG_TUNE_RUN = "signals.tune_run_id"
TAG_TUNE_STUDY = "signals.tune_study"  # one walk-forward study: same data, tuning config and windows
TAG_HOST = "signals.host"  # the process running the run: host, pid and that pid's start time,
TAG_PID = "signals.pid"  # so a later process can tell a run whose process died from a live one
TAG_PID_START = "signals.pid_start"
TAG_HEARTBEAT = "signals.heartbeat"  # unix seconds, refreshed while the run's process lives
TAG_RESUMED_FROM = "signals.resumed_from"  # on a run that took over from dead runs: their ids
TAG_SUPERSEDED_BY = "signals.superseded_by"  # on a dead run marked FAILED: the run that took over
TAG_DATA_WARNINGS = "signals.data_warnings"  # how many suspicious-data warnings (data_warnings.json)
PARENT_TAG = "mlflow.parentRunId"
DATA_WARNINGS_FILE = "data_warnings.json"

STEP_TUNE = "tune"
STEP_WINDOW = "tune-window"
STEP_TRIAL = "tune-trial"
STEP_TRAIN = "train"

MAX_PARAMS_PER_BATCH = 100
MAX_METRICS_PER_BATCH = 1000
MAX_PARAM_VALUE = 6000

# Callers that redact one value (e.g. the tune step's storage URL) keep using ``T.redact``.
redact = redact_value


# ------------------------------------------------------------------------------- setup
def quiet_mlflow() -> None:
    """No artifact progress bars in logs and tests."""
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


# The MLflow 3 UI opens an experiment in its GenAI layout unless this tag says otherwise
# (mlflow/server/js: ExperimentKind.CUSTOM_MODEL_DEVELOPMENT = "custom_model_development").
TAG_EXPERIMENT_KIND = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"
TAG_NOTE = "mlflow.note.content"


def experiment_description(settings: "Settings", name: str) -> str:
    """What an experiment holds, shown on its page in the MLflow UI."""
    if name == settings.mlflow.monitoring_experiment:
        return ("Monitoring of the champion model: one run per check (`signals monitor`), named "
                "monitor-<check date>-v<version>-<time>, with per-feature PSI drift, rolling accuracy against "
                "the resolved outcomes and model age, the Evidently report and a PSI heatmap.")
    return ("The signals model lifecycle. `main` runs hold one child run per step (features, tune with a run per "
            "walk-forward window and per Optuna trial, train, promote, monitor, generate); `backtest` runs price "
            "a tune run's out-of-sample predictions. Every out-of-sample metric sits next to its naive baseline "
            "on the same rows (`baseline_*`: class prior, always UP, buy and hold). Registered versions: Models tab.")


def describe_experiment(client: Any, experiment_id: str, settings: "Settings") -> None:
    """Tag the experiment for the classic ML view and describe it, unless someone already did."""
    try:
        exp = client.get_experiment(experiment_id)
        tags = dict(exp.tags or {})
        if TAG_EXPERIMENT_KIND not in tags:
            client.set_experiment_tag(experiment_id, TAG_EXPERIMENT_KIND, EXPERIMENT_KIND)
        if not tags.get(TAG_NOTE):
            client.set_experiment_tag(experiment_id, TAG_NOTE, experiment_description(settings, exp.name))
    except Exception as exc:  # noqa: BLE001 - cosmetic: never fail a run on it
        log.debug("could not tag experiment %s: %s", experiment_id, exc)


def unique_run_name(base: str) -> str:
    """``base`` plus the UTC time to the second, so re-runs of one step are told apart in the UI."""
    return f"{base}-{datetime.now(timezone.utc):%m%d-%H%M%S}"


def run_identity_tags() -> dict[str, str]:
    """``mlflow.user``, ``mlflow.source.name`` / ``.type`` (and git commit) the way a fluent
    ``mlflow.start_run`` sets them; for runs created through ``MlflowClient.create_run``."""
    try:
        from mlflow.tracking.context.registry import resolve_tags

        return {k: v for k, v in resolve_tags({}).items() if k.startswith("mlflow.")}
    except Exception:  # noqa: BLE001 - an MLflow without that module: the essentials by hand
        return {"mlflow.user": getpass.getuser(), "mlflow.source.name": os.path.basename(sys.argv[0] or "signals"),
                "mlflow.source.type": "LOCAL"}


def configure_mlflow(settings: "Settings", experiment: str | None = None) -> str:
    """Point MLflow at the configured tracking/registry URIs and get-or-create the experiment.

    Returns the experiment id (and makes it the active experiment).
    """
    import mlflow
    from mlflow.exceptions import MlflowException

    quiet_mlflow()
    mlflow.set_tracking_uri(settings.mlflow.tracking_uri)
    if settings.mlflow.registry_uri:
        mlflow.set_registry_uri(settings.mlflow.registry_uri)
    client = mlflow.MlflowClient()
    env_run = os.environ.get("MLFLOW_RUN_ID")
    if experiment is None and env_run:
        # Started by `mlflow run`: its run (and so the whole pipeline) lives in the experiment it
        # chose (--experiment-name / MLFLOW_EXPERIMENT_NAME, else Default); follow it.
        try:
            exp_id = client.get_run(env_run).info.experiment_id
        except MlflowException:
            exp_id = None
        if exp_id is not None:
            mlflow.set_experiment(experiment_id=exp_id)
            describe_experiment(client, str(exp_id), settings)
            return str(exp_id)
    exp_id = get_or_create_experiment(client, settings, experiment or settings.mlflow.experiment)
    mlflow.set_experiment(experiment_id=exp_id)
    describe_experiment(client, str(exp_id), settings)
    return str(exp_id)


#: tracking URI schemes of MLflow's SQL store other than SQLite: every host talks to the database
#: itself, so no server decides where artifacts go
_DATABASE_SCHEMES = ("postgresql", "postgres", "mysql", "mssql")


def artifact_location(settings: "Settings") -> str | None:
    """Where a new experiment keeps its artifacts: ``mlflow.artifact_location``, else MLflow's
    default. With a direct database tracking URI there is no good default (each client would
    write to its own ``./mlruns``), so one must be configured."""
    location = settings.mlflow.artifact_location
    scheme = settings.mlflow.tracking_uri.split(":", 1)[0].split("+", 1)[0].lower()
    if not location and scheme in _DATABASE_SCHEMES:
        raise ConfigError(
            f"mlflow.tracking_uri is a database ({redact_value('url', settings.mlflow.tracking_uri)}) and "
            "mlflow.artifact_location is not set, so each host would keep its runs' artifacts in its own ./mlruns: "
            "set mlflow.artifact_location (SA_MLFLOW__ARTIFACT_LOCATION) to a store every host reaches, e.g. "
            "s3://bucket/mlruns or file:///shared/mlruns, or track through an `mlflow server`"
        )
    return location or None


def get_or_create_experiment(client: Any, settings: "Settings", name: str) -> str:
    """The id of experiment ``name`` (restored if deleted), created with the configured
    artifact location if it does not exist."""
    from mlflow.exceptions import MlflowException

    exp = client.get_experiment_by_name(name)
    if exp is not None:
        if exp.lifecycle_stage == "deleted":
            client.restore_experiment(exp.experiment_id)
        return str(exp.experiment_id)
    try:
        return str(client.create_experiment(name, artifact_location=artifact_location(settings)))
    except MlflowException:  # created concurrently by another process
        exp = client.get_experiment_by_name(name)
        if exp is None:
            raise
        return str(exp.experiment_id)


# ------------------------------------------------------------------------------- provenance
def git_info(path: str | os.PathLike[str] = PROJECT_ROOT) -> dict[str, str]:
    """``commit``, ``dirty`` ("true"/"false") and ``branch`` of the repository; "unknown" without git."""

    def git(*args: str) -> str | None:
        try:
            res = subprocess.run(["git", *args], cwd=path, capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.SubprocessError):
            return None
        return res.stdout.strip() if res.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if not commit:
        return {"commit": "unknown", "dirty": "unknown", "branch": "unknown"}
    status = git("status", "--porcelain", "--untracked-files=no")
    return {
        "commit": commit,
        "dirty": "unknown" if status is None else str(bool(status)).lower(),
        "branch": git("rev-parse", "--abbrev-ref", "HEAD") or "unknown",
    }


def provenance_tags(feature_version: str | None = None) -> dict[str, str]:
    g = git_info()
    tags = {TAG_GIT_COMMIT: g["commit"], TAG_GIT_DIRTY: g["dirty"], TAG_GIT_BRANCH: g["branch"]}
    if g["commit"] != "unknown":
        tags["mlflow.source.git.commit"] = g["commit"]
    if feature_version is not None:
        tags[TAG_FEATURE_VERSION] = str(feature_version)
    return tags


def resolved_config(settings: "Settings") -> dict[str, Any]:
    """``settings.flat()`` with credentials masked (:mod:`signals.core.redaction`)."""
    return redact_mapping(settings.flat())


def resolved_config_yaml(settings: "Settings") -> str:
    """The resolved settings as YAML, credentials masked."""

    return yaml.safe_dump(redact_value("", settings.model_dump(mode="json")), sort_keys=False)


def _param_value(v: Any) -> str:
    s = json.dumps(v) if isinstance(v, (list, dict)) else str(v)
    return s if len(s) <= MAX_PARAM_VALUE else s[: MAX_PARAM_VALUE - 3] + "..."


def log_params_batch(client: Any, run_id: str, params: Mapping[str, Any], prefix: str = "") -> None:
    """Params in batches of 100; every value passes redaction, since params are shown to anyone
    who can read the tracking store."""
    from mlflow.entities import Param

    items = [Param(f"{prefix}{k}", _param_value(v)) for k, v in redact_mapping(params).items()]
    for i in range(0, len(items), MAX_PARAMS_PER_BATCH):
        client.log_batch(run_id, params=items[i : i + MAX_PARAMS_PER_BATCH])


def log_metrics_batch(client: Any, run_id: str, metrics: Mapping[str, Any], step: int = 0, prefix: str = "") -> None:
    """Log finite numeric metrics in one batch (non-finite values are skipped, not stored as NaN)."""
    from mlflow.entities import Metric

    ts = _now_ms()
    items = []
    for k, v in metrics.items():
        try:
            f = float(v)
        except (TypeError, ValueError):
            continue
        if math.isfinite(f):
            items.append(Metric(f"{prefix}{k}", f, ts, step))
    for i in range(0, len(items), MAX_METRICS_PER_BATCH):
        client.log_batch(run_id, metrics=items[i : i + MAX_METRICS_PER_BATCH])


def set_tags_batch(client: Any, run_id: str, tags: Mapping[str, Any]) -> None:
    from mlflow.entities import RunTag

    client.log_batch(run_id, tags=[RunTag(k, str(v)) for k, v in redact_mapping(tags).items()])


def log_resolved_config(client: Any, run_id: str, settings: "Settings") -> None:
    """Every resolved setting as a param (secrets redacted) plus the full YAML as an artifact."""
    log_params_batch(client, run_id, resolved_config(settings), prefix="cfg.")
    log_text(client, run_id, resolved_config_yaml(settings), "config/resolved_settings.yaml")


# ------------------------------------------------------------------------------- artifacts
def log_text(client: Any, run_id: str, text: str, artifact_file: str) -> None:
    client.log_text(run_id, text, artifact_file)


def log_json(client: Any, run_id: str, obj: Any, artifact_file: str) -> None:
    client.log_text(run_id, json.dumps(obj, indent=2, sort_keys=True, default=str), artifact_file)


def log_parquet(client: Any, run_id: str, df: pd.DataFrame, artifact_file: str) -> str:
    """Write ``df`` as Parquet and log it; returns the artifact URI."""
    art = Path(artifact_file)
    with tempfile.TemporaryDirectory(prefix="signals-art-") as tmp:
        path = Path(tmp) / art.name
        df.to_parquet(path, engine="pyarrow", index=False)
        client.log_artifact(run_id, str(path), str(art.parent) if str(art.parent) != "." else None)
    return artifact_uri(client, run_id, artifact_file)


def log_figure(client: Any, run_id: str, fig: Any, artifact_file: str) -> str:
    client.log_figure(run_id, fig, artifact_file)
    return artifact_uri(client, run_id, artifact_file)


def artifact_uri(client: Any, run_id: str, artifact_file: str) -> str:
    base = client.get_run(run_id).info.artifact_uri.rstrip("/")
    return f"{base}/{artifact_file}"


def log_data_warnings(client: Any, run_id: str, warnings: list[dict[str, Any]]) -> None:
    """The suspicious-data warnings of a run's inputs (:mod:`signals.data.suspicious`): their count as
    the tag ``signals.data_warnings`` and, when there are any, the records as ``data_warnings.json``."""
    client.set_tag(run_id, TAG_DATA_WARNINGS, str(len(warnings)))
    if warnings:
        log_json(client, run_id, warnings, DATA_WARNINGS_FILE)


# ------------------------------------------------------------------------------- datasets
def log_training_dataset(
    df: pd.DataFrame,
    *,
    name: str,
    source: Mapping[str, Any],
    context: str = "training",
    targets: str | None = "target",
    digest: str | None = None,
) -> str:
    """Log ``df`` as an MLflow dataset input of the active run with our own full digest.

    ``source`` (provider description, symbols, date range, synthetic tables) is stored as the
    dataset source and as input tags. Returns the digest.
    """
    import mlflow
    from mlflow.data.code_dataset_source import CodeDatasetSource

    digest = digest or frame_digest(df)
    flat_source = {k: _param_value(v) for k, v in redact_mapping(source).items()}
    with warnings.catch_warnings():  # the integer target column triggers MLflow's schema hint
        warnings.simplefilter("ignore", UserWarning)
        ds = mlflow.data.from_pandas(
            df, source=CodeDatasetSource(flat_source), name=name, digest=digest[:36],
            targets=targets if targets in df.columns else None,
        )
        mlflow.log_input(ds, context=context, tags={k: v[:250] for k, v in flat_source.items()})
    return digest


# ------------------------------------------------------------------------------- runs
def _now_ms() -> int:

    return int(time.time() * 1000)


def latest_run(client: Any, experiment_id: str, step: str, *, status: str = "FINISHED") -> Any | None:
    """The most recently started run tagged ``signals.step=<step>`` with the given status.

    Step runs may themselves be nested (e.g. under a pipeline run); window and trial runs carry
    other step tags, so the tag alone identifies a step's parent run.
    """
    runs = client.search_runs(
        [experiment_id],
        filter_string=f"tags.`{TAG_STEP}` = '{step}' and attributes.status = '{status}'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    return runs[0] if runs else None


class TrialRunLogger:
    """Logs each Optuna trial as a run nested under ``parent_run_id`` (a window run).

    Thread-safe for parallel trials: it never touches MLflow's per-thread active-run stack. Each
    trial costs three store calls (create_run with the parent tag, one ``log_batch`` holding
    params, the intermediate losses, tags and the score, and ``set_terminated``). With
    ``background=True`` the calls run on one worker thread, so they overlap with the next
    trial's training and are serialised (no SQLite lock contention); :meth:`close` waits for
    them and re-raises the first error.
    """

    def __init__(self, client: Any, experiment_id: str, parent_run_id: str, *, window: int | None = None,
                 background: bool = True, extra_tags: Mapping[str, str] | None = None) -> None:
        self.client = client
        self.experiment_id = experiment_id
        self.parent_run_id = parent_run_id
        self.window = window
        self.extra_tags = dict(extra_tags or {})
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="trial-log") if background else None
        self._futures: list[Future] = []
        self._lock = threading.Lock()
        self.run_ids: list[str] = []

    def __call__(self, record: "TrialRecord") -> None:
        if self._executor is None:
            with self._lock:
                self._log(record)
        else:
            self._futures.append(self._executor.submit(self._log, record))

    def _log(self, record: "TrialRecord") -> None:
        from mlflow.entities import Metric, Param

        tags = {
            PARENT_TAG: self.parent_run_id,
            TAG_STEP: STEP_TRIAL,
            "optuna.trial_number": str(record.number),
            "optuna.state": record.state,
            "pruned": str(record.pruned).lower(),
            **self.extra_tags,
        }
        if self.window is not None:
            tags[TAG_WINDOW] = str(self.window)
        name = f"trial-{record.number:03d}"
        fidelity = float(getattr(record, "fidelity", 1.0))
        tags["fidelity"] = f"{fidelity:.3f}"
        if fidelity < 1.0:  # the subsample ranking of a two-fidelity study: its own trial numbers
            name += "-subsample"
            tags["optuna.study_role"] = "subsample"
        run = self.client.create_run(
            self.experiment_id, start_time=int(record.start_time * 1000), tags=tags, run_name=name
        )
        rid = run.info.run_id
        end_ms = int(record.end_time * 1000)
        metrics = [Metric("val_log_loss_at_round", v, end_ms, step) for step, v in record.intermediate]
        if record.value is not None and math.isfinite(record.value):
            metrics.append(Metric("val_log_loss", float(record.value), end_ms, 0))
        if record.n_rounds is not None:
            metrics.append(Metric("n_rounds", float(record.n_rounds), end_ms, 0))
        metrics.append(Metric("pruned", 1.0 if record.pruned else 0.0, end_ms, 0))
        metrics.append(Metric("duration_s", record.end_time - record.start_time, end_ms, 0))
        params = [Param(k, _param_value(v)) for k, v in record.params.items()]
        self.client.log_batch(rid, metrics=metrics, params=params)
        self.client.set_terminated(rid, "FINISHED", end_time=end_ms)
        self.run_ids.append(rid)

    def close(self) -> None:
        futures, self._futures = self._futures, []
        errors = []
        for f in futures:
            try:
                f.result()
            except Exception as exc:  # noqa: BLE001 - re-raised below after all finished
                errors.append(exc)
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
        if errors:
            raise errors[0]


# ------------------------------------------------------------------------------- dead runs
#: How often a live run refreshes its heartbeat tag, and how old a heartbeat must be before a
#: run on another host (whose pid cannot be checked) counts as dead.
HEARTBEAT_INTERVAL_S = 30.0
HEARTBEAT_GRACE_S = 600.0


def _pid_start(pid: int) -> str | None:
    """The start time of process ``pid`` (clock ticks since boot, Linux): tells a reused pid apart."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def process_tags() -> dict[str, str]:
    """Who runs this run: host, pid, the pid's start time, and a first heartbeat."""
    import socket

    tags = {TAG_HOST: socket.gethostname(), TAG_PID: str(os.getpid()), TAG_HEARTBEAT: f"{time.time():.0f}"}
    start = _pid_start(os.getpid())
    if start is not None:
        tags[TAG_PID_START] = start
    return tags


def run_process_dead(tags: Mapping[str, str], *, now: float | None = None, grace_s: float = HEARTBEAT_GRACE_S) -> bool:
    """Whether the process that ran a run (from :func:`process_tags`) is gone.

    On this host: its pid no longer exists, or now belongs to a later process (another start
    time). On another host, where no pid can be checked: its heartbeat is older than
    ``grace_s``. A run without these tags (an older version's) is never judged dead.
    """
    import socket

    host, pid = tags.get(TAG_HOST), tags.get(TAG_PID)
    if not host or not pid or not pid.isdigit():
        return False
    if host == socket.gethostname():
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return True
        except PermissionError:  # alive, another user's
            return False
        started = tags.get(TAG_PID_START)
        return started is not None and _pid_start(int(pid)) not in (None, started)
    try:
        beat = float(tags.get(TAG_HEARTBEAT, ""))
    except ValueError:
        return False
    return (time.time() if now is None else now) - beat > grace_s


class RunHeartbeat:
    """Refreshes a run's heartbeat tag from a daemon thread while the block runs.

    It is what lets a process on another host tell that this run's process died (see
    :func:`run_process_dead`); a failed refresh is logged and retried, never raised.
    """

    def __init__(self, tracking_uri: str, run_id: str, interval_s: float = HEARTBEAT_INTERVAL_S) -> None:
        self.tracking_uri, self.run_id, self.interval_s = tracking_uri, run_id, interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _beat(self) -> None:
        import mlflow

        client = mlflow.MlflowClient(tracking_uri=self.tracking_uri)
        while not self._stop.wait(self.interval_s):
            try:
                client.set_tag(self.run_id, TAG_HEARTBEAT, f"{time.time():.0f}")
            except Exception as exc:  # noqa: BLE001 - a missed beat only delays another host's verdict
                log.debug("heartbeat of run %s failed: %s", self.run_id, exc)

    def __enter__(self) -> "RunHeartbeat":
        self._thread = threading.Thread(target=self._beat, name=f"heartbeat-{self.run_id[:8]}", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)


def _running_children(client: Any, experiment_id: str, parent_ids: list[str]) -> list[Any]:
    """Every RUNNING run below ``parent_ids`` (children, grandchildren, ...)."""
    found: list[Any] = []
    frontier = list(parent_ids)
    while frontier:  # MLflow's search takes no IN on tags: one query per parent (a tune has a few windows)
        parent = frontier.pop()
        children = client.search_runs(
            [experiment_id], filter_string=f"tags.`{PARENT_TAG}` = '{parent}'", max_results=50_000
        )
        for child in children:
            frontier.append(child.info.run_id)
            if child.info.status == "RUNNING":
                found.append(child)
    return found


def supersede_dead_runs(client: Any, experiment_id: str, run_id: str, match: Mapping[str, str]) -> list[str]:
    """Mark FAILED the RUNNING runs tagged like ``match`` whose process died, and link them to ``run_id``.

    A ``kill -9`` leaves a run (and its nested runs) RUNNING forever. When a new run of the same
    work starts (e.g. the same tuning study, which it resumes), each such dead run and every
    RUNNING run nested under it is set FAILED; the dead run gets ``signals.superseded_by=<run_id>``
    and the new run ``signals.resumed_from=<their ids>``. Returns the dead runs' ids.
    """
    clauses = [f"tags.`{k}` = '{v}'" for k, v in match.items()] + ["attributes.status = 'RUNNING'"]
    candidates = client.search_runs([experiment_id], filter_string=" and ".join(clauses), max_results=1000)
    dead = [r for r in candidates if r.info.run_id != run_id and run_process_dead(r.data.tags)]
    if not dead:
        return []
    ids = [r.info.run_id for r in dead]
    for child in _running_children(client, experiment_id, ids):
        client.set_terminated(child.info.run_id, "FAILED")
    for rid in ids:
        client.set_tag(rid, TAG_SUPERSEDED_BY, run_id)
        client.set_terminated(rid, "FAILED")
    client.set_tag(run_id, TAG_RESUMED_FROM, ",".join(ids))
    log.warning("marked %d run(s) of a process that died FAILED (%s); %s takes over", len(ids), ", ".join(ids), run_id)
    return ids


# ------------------------------------------------------------------------------- step runs
def parent_run_tags() -> dict[str, str]:
    """``mlflow.parentRunId`` of the active run, if any: lets client-created runs nest under a pipeline."""
    import mlflow

    active = mlflow.active_run()
    return {PARENT_TAG: active.info.run_id} if active is not None else {}


def start_step_run(run_name: str, tags: Mapping[str, str]):
    """Open a step's run the way every entry point should.

    * inside the ``main`` pipeline (a run is active): a nested child run of it;
    * under ``mlflow run -e <step>`` (``MLFLOW_RUN_ID`` set, nothing active): that very run;
    * otherwise: a new top-level run.
    """
    import mlflow

    tags = redact_mapping(tags)
    run_name = unique_run_name(run_name)
    if mlflow.active_run() is not None:
        return mlflow.start_run(run_name=run_name, tags=tags, nested=True)
    return mlflow.start_run(run_name=run_name, tags=tags)


def open_client_run(client: Any, experiment_id: str, run_name: str, tags: Mapping[str, str]) -> tuple[str, bool]:
    """Like :func:`start_step_run` for code that logs through ``MlflowClient``.

    Returns ``(run_id, owned)``; ``owned`` is False when the run is the one ``mlflow run`` created
    (the caller must then not terminate it).
    """
    tags = redact_mapping(tags)
    run_name = unique_run_name(run_name)
    env_run = os.environ.get("MLFLOW_RUN_ID")
    parent = parent_run_tags()
    if not parent and env_run:
        run = client.get_run(env_run)
        if run.info.experiment_id == str(experiment_id):
            set_tags_batch(client, env_run, {**tags, "mlflow.runName": run_name})
            return env_run, False
    import mlflow

    active = mlflow.active_run()
    exp = active.info.experiment_id if active is not None else str(experiment_id)  # children live with their parent
    run = client.create_run(exp, run_name=run_name, tags={**run_identity_tags(), **tags, **parent})
    return run.info.run_id, True
