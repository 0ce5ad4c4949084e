"""The ``signals`` command line. Thin by design: parse, build the config, call one function.

Each command family lives in its own module and is registered in ``_COMMAND_MODULES``.
"""

from __future__ import annotations

import importlib
import os
import sys

import click

from signals.cli.common import Context, run_cli

# module path -> attribute holding a click command or group
_COMMAND_MODULES: list[tuple[str, str]] = [
    ("signals.cli.data", "data"),
    ("signals.cli.features", "features"),
    ("signals.cli.run", "run"),
    *[("signals.cli.monitor", c) for c in ("monitor", "retrain")],
    *[("signals.cli.signals_cmd", c) for c in ("generate", "backtest")],
    *[("signals.cli.train", c) for c in ("tune", "train")],
    *[("signals.cli.registry", c) for c in ("registry", "register", "promote", "rollback", "serve")],
    ("signals.cli.redis_cmd", "redis_group"),
]


class _PipeClosed(Exception):
    """The reader of stdout went away (``signals ... | head``)."""


class PipeSafeGroup(click.Group):
    """Turns a closed stdout into :class:`_PipeClosed` before click maps it to exit status 1."""

    def invoke(self, ctx: click.Context):  # noqa: ANN201 - whatever the command returns
        try:
            return super().invoke(ctx)
        except BrokenPipeError:
            raise _PipeClosed() from None


@click.group(cls=PipeSafeGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=str),
    default=None,
    envvar="SA_CONFIG",
    help="Settings file (default: config/settings.yaml). SA_* environment variables still override it.",
)
@click.option("-v", "--verbose", count=True, help="More logging (-vv for debug).")
@click.version_option(package_name="signals")
@click.pass_context
def cli(ctx: click.Context, config_path: str | None, verbose: int) -> None:
    """Model lifecycle for daily stock signals: features, tuning, training, registry,
    monitoring and signals, all tracked in MLflow."""
    ctx.obj = Context(config_path=config_path, verbose=verbose)
    ctx.obj.setup_logging()


for _module, _attr in _COMMAND_MODULES:
    cli.add_command(getattr(importlib.import_module(_module), _attr))


def main() -> None:
    try:
        run_cli(cli)
    except _PipeClosed:
        # `signals ... | head`: the reader has what it wanted. Point stdout at /dev/null so the
        # interpreter's final flush cannot raise again, and exit 0 (the Python docs' recipe).
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        sys.exit(0)
