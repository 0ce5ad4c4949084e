"""``signals registry list|sync``, ``signals register``, ``promote``, ``rollback`` and ``serve``.

Thin: parse, build the config, call one function in ``entrypoints`` / ``signals.registry.client``.
A registry change whose Redis mirror write failed still succeeded in MLflow: that prints a
warning on stderr and exits 0; ``signals registry sync`` repairs the mirror.
"""

from __future__ import annotations

import os
import sys

import click

from signals.adapters.redis import describe
from signals.cli.common import Context, echo_json, pass_ctx, print_table
from signals.core.errors import SignalsError
from signals.core.netutil import port_in_use
from signals.lifecycle.promote import run_promote
from signals.lifecycle.register import run_register
from signals.lifecycle.rollback import run_rollback
from signals.lifecycle.wiring import open_registry
from signals.registry.client import ModelRegistry
from signals.serving.schema import ENV_MODEL_NAME, ENV_MODEL_VERSION

KEY_METRICS = ("holdout_log_loss", "holdout_accuracy", "log_loss", "accuracy")


class NoChampionError(SignalsError):
    pass


def _warn_mirror(ok: bool | None, ctx: Context) -> None:
    if ok is False:

        click.echo(
            f"Warning: MLflow was updated but the Redis mirror ({describe(ctx.settings.redis)}) was not; "
            "it is marked stale. Run `signals registry sync` once Redis is reachable.",
            err=True,
        )


def _fmt_metric(metrics: dict[str, float], key: str) -> str:
    value = metrics.get(key)
    return "" if value is None else f"{value:.4f}"


@click.group("registry")
def registry() -> None:
    """Inspect the model registry and its Redis mirror."""


@registry.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@pass_ctx
def list_versions(ctx: Context, as_json: bool) -> None:
    """Registered versions, newest first, with aliases and key metrics."""

    reg = ModelRegistry.from_settings(ctx.settings, mirror=False)
    versions = reg.list_versions()
    previous = reg.previous_champion()
    if as_json:
        echo_json(
            {
                "model_name": reg.name,
                "previous_champion": previous,
                "versions": [
                    {
                        "version_id": v.version_id,
                        "aliases": list(v.aliases),
                        "stage": v.stage,
                        "created_at": v.created_at.isoformat(),
                        "metrics": v.metrics,
                        "run_id": v.run_id,
                        "path": v.path,
                        **{k: v.tags.get(k) for k in ("promoted_by", "promoted_at", "gate.p_value")},
                    }
                    for v in versions
                ],
            }
        )
        return
    if not versions:
        click.echo(f"no versions registered for model {reg.name!r} yet (train, then `signals register RUN_ID`)")
        return
    present = [k for k in KEY_METRICS if any(k in v.metrics for v in versions)]
    rows = [
        {
            "version": v.version_id,
            "aliases": ",".join(v.aliases),
            "created": v.created_at.strftime("%Y-%m-%d %H:%M"),
            **{k: _fmt_metric(v.metrics, k) for k in present},
            "gate_p": _fmt_metric({"p": float(v.tags["gate.p_value"])}, "p") if v.tags.get("gate.p_value") else "",
            "promoted_by": v.tags.get("promoted_by", ""),
            "run": (v.run_id or "")[:8],
        }
        for v in versions
    ]
    click.echo(f"model: {reg.name}   previous champion: {previous or '-'}")
    print_table(rows)


@registry.command("sync")
@pass_ctx
def sync(ctx: Context) -> None:
    """Rebuild the Redis mirror from MLflow (after an outage, or a Redis that lost its data)."""

    reg = open_registry(ctx.settings)
    ok = reg.sync_mirror()
    where = describe(ctx.settings.redis)
    if ok is None:
        click.echo(f"Redis mirror is off ({where}); nothing to sync")
    elif ok:
        snap = reg.snapshot()
        click.echo(
            f"mirror at {where} (prefix {ctx.settings.redis.prefix!r}) rebuilt: {len(snap.versions)} version(s), "
            f"champion {snap.champion or '-'}, challenger {snap.challenger or '-'}"
        )
    else:
        raise SignalsError(f"could not write the Redis mirror at {where}: {reg.mirror.last_error}; it stays marked stale")


@click.command("register")
@click.argument("run_id")
@pass_ctx
def register(ctx: Context, run_id: str) -> None:
    """Register the model logged by training run RUN_ID as the new challenger."""

    version = run_register(ctx.settings, run_id)
    click.echo(f"run {run_id} -> version {version.version_id} (aliases: {', '.join(version.aliases) or '-'})")


@click.command("promote")
@click.argument("version", required=False)
@click.option("--auto", is_flag=True, help="Promote the challenger only if the gate says it beats the champion "
              "(with no champion: its class prior).")
@click.option("--force", is_flag=True, help="With --auto: promote the challenger even if the gate says keep "
              "(the gate's verdict and the override are recorded on the version).")
@click.option("--reason", default=None, help="Why (recorded on the version).")
@click.option("--json", "as_json", is_flag=True, help="Print the decision as JSON.")
@pass_ctx
def promote(ctx: Context, version: str | None, auto: bool, force: bool, reason: str | None, as_json: bool) -> None:
    """Make VERSION the champion, or (--auto) let the promotion gate decide about the challenger."""

    result = run_promote(ctx.settings, version=version, auto=auto, reason=reason, force=force)
    if as_json:
        echo_json(result.as_dict())
    else:
        click.echo(result.message)
        gate = result.gate
        if gate is not None and gate.p_value is not None:
            click.echo(
                f"gate: decision={gate.decision} p_value={gate.p_value:.4f} alpha={gate.alpha} "
                f"improvement={gate.improvement:+.5f} rows={gate.n_rows} dates={gate.n_dates}"
            )
    _warn_mirror(result.mirror_ok, ctx)


@click.command("rollback")
@click.argument("version", required=False)
@click.option("--reason", default=None, help="Why (recorded on the version).")
@pass_ctx
def rollback(ctx: Context, version: str | None, reason: str | None) -> None:
    """Move the champion back to VERSION, or to the previous champion."""

    result = run_rollback(ctx.settings, version=version, reason=reason)
    click.echo(result.message)
    _warn_mirror(result.mirror_ok, ctx)


def serve_command(
    settings, host: str | None = None, port: int | None = None, workers: int = 1
) -> tuple[list[str], dict[str, str], str]:
    """The ``mlflow models serve`` command line and environment for the champion (and its version)."""

    reg = ModelRegistry.from_settings(settings, mirror=False)
    champion = reg.get_active()
    if champion is None:
        raise NoChampionError(
            f"model {reg.name!r} has no champion to serve; promote one first (`signals promote VERSION`)"
        )
    tracking = settings.mlflow.tracking_uri
    cmd = [
        sys.executable, "-m", "mlflow", "models", "serve",
        "-m", f"models:/{reg.name}@champion",
        "--env-manager", "local",
        "-h", host or settings.serve.host,
        "-p", str(port or settings.serve.port),
        *(["--workers", str(workers)] if workers != 1 else []),
    ]  # fmt: skip
    # MLflow starts the server as `bash -c "exec uvicorn ..."`: put this interpreter's bin directory
    # first on PATH so an un-activated venv (`.venv/bin/signals serve`) still finds its uvicorn.
    bin_dir = os.path.dirname(sys.executable)
    env = {
        **os.environ,
        "PATH": os.pathsep.join([bin_dir, os.environ.get("PATH", "")]),
        "MLFLOW_TRACKING_URI": tracking,
        "MLFLOW_REGISTRY_URI": settings.mlflow.registry_uri or tracking,
        "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
        # the served model names itself in every signal record (signals/serving/schema.py)
        ENV_MODEL_NAME: reg.name,
        ENV_MODEL_VERSION: str(champion.version_id),
    }
    # Idle XGBoost/OpenMP threads spin by default; on a box shared with training jobs that took
    # 1,000-row latency from ~9 ms to ~30 ms here (benchmarks/serving.py). A user's setting wins.
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    return cmd, env, champion.version_id


@click.command("serve")
@click.option("--host", default=None, help="Interface to bind (default: serve.host, 127.0.0.1).")
@click.option("--port", type=click.IntRange(1, 65535), default=None, help="Port (default: serve.port).")
@click.option("--workers", "-w", type=click.IntRange(1, 64), default=1, show_default=True,
              help="Server worker processes (uvicorn), for concurrent clients; each loads the model.")
@pass_ctx
def serve(ctx: Context, host: str | None, port: int | None, workers: int) -> None:
    """Serve the champion over HTTP with `mlflow models serve` (POST /invocations).

    The alias is resolved once at start: restart the server after a promotion or rollback.
    """
    h, p = host or ctx.settings.serve.host, port or ctx.settings.serve.port
    if port_in_use(h, p):  # before MLflow and uvicorn start and bury the cause in a traceback
        raise SignalsError(f"port {p} is in use (on {h}); stop what listens there or pass --port")
    cmd, env, version = serve_command(ctx.settings, host, port, workers)
    click.echo(
        f"serving {ctx.settings.mlflow.model_name}@champion (version {version}) on http://{h}:{p}/invocations"
        + (f" with {workers} workers" if workers > 1 else ""),
        err=True,
    )
    sys.stdout.flush()
    sys.stderr.flush()
    os.execvpe(cmd[0], cmd, env)  # replace this process: signals (SIGTERM, Ctrl-C) reach the server
