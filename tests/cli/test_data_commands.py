"""The data commands' fixes: export keeps the synthetic label, check reads as tables, one -s option
for every command, and a closed pipe (`| head`) is not an error."""

from __future__ import annotations

import json
import subprocess
import sys

import click
import pytest
from click.testing import CliRunner

from signals.cli.common import symbols_option
from signals.cli.data import render_check


def test_export_keeps_the_synthetic_label_on_read_back(settings, workdir) -> None:
    from signals.data.parquet import ParquetProvider, export_provider
    from signals.data.sources import get_provider

    sample = get_provider(settings)
    assert sample.synthetic_tables, "the sample's event tables are generated"
    root = export_provider(sample, workdir / "layout", ["AAPL"])
    back = ParquetProvider(root)
    assert back.synthetic_tables == sample.synthetic_tables
    assert back.describe()["synthetic_tables"] == sorted(sample.synthetic_tables)


def test_render_check_is_tables_not_a_dict() -> None:
    report = {
        "source": {"provider": "parquet", "synthetic_tables": ["fundamentals"], "path": "/data"},
        "symbols": [{"symbol": "AAPL", "rows": 10, "first": "2020-01-02", "last": "2020-01-15", "gaps": 0,
                     "adjusted_rows": 0, "bars": "ohlcv", "fixes": ""}],
        "tables": [{"table": "market/VIX", "rows": 5, "symbols": 1, "first_available": "2021-01-04",
                    "last_available": "2021-01-08", "synthetic": False},
                   {"table": "fundamentals", "rows": 3, "symbols": 1, "first_available": "2020-01-02",
                    "last_available": "2020-01-10", "synthetic": True}],
        "unavailable": [],
        "warnings": [{"message": "market/VIX (2021-01-04..2021-01-08) does not overlap the bars"}, "plain text"],
    }
    lines = render_check(report)
    text = "\n".join(lines)
    assert "{" not in text and "'" not in text, text
    assert lines[0].split() == ["provider:", "parquet"] and lines[1].split() == ["synthetic_tables:", "fundamentals"]
    header = next(i for i, line in enumerate(lines) if line.startswith("table "))
    assert lines[header + 2].split()[-1] == "no" and lines[header + 3].split()[-1] == "yes"
    assert "warnings:" in lines
    assert "  - market/VIX (2021-01-04..2021-01-08) does not overlap the bars" in lines and "  - plain text" in lines


@click.command()
@symbols_option
def _echo_symbols(symbols: list[str] | None) -> None:
    click.echo(json.dumps(symbols))


@pytest.mark.parametrize("args, expected", [
    ([], None),
    (["-s", "AAPL,msft"], ["AAPL", "MSFT"]),
    (["-s", "AAPL", "-s", "MSFT"], ["AAPL", "MSFT"]),
    (["-s", "AAPL,MSFT", "--symbols", "IBM", "-s", "aapl"], ["AAPL", "MSFT", "IBM"]),
])
def test_one_symbols_option_takes_commas_and_repeats(args: list[str], expected: list[str] | None) -> None:
    out = CliRunner().invoke(_echo_symbols, args)
    assert out.exit_code == 0, out.output
    assert json.loads(out.output) == expected


def test_every_command_with_symbols_uses_the_shared_option() -> None:
    from signals.cli import cli
    from signals.cli.common import SymbolList

    def walk(cmd: click.Command, path: str):
        if isinstance(cmd, click.Group):
            for name, sub in cmd.commands.items():
                yield from walk(sub, f"{path} {name}")
        else:
            yield path, cmd

    with_symbols = {}
    for path, cmd in walk(cli, "signals"):
        for p in cmd.params:
            if "--symbols" in getattr(p, "opts", []):
                with_symbols[path] = p
    assert {"signals data check", "signals generate", "signals monitor", "signals tune"} <= set(with_symbols)
    assert all(isinstance(p.type, SymbolList) and p.multiple for p in with_symbols.values()), with_symbols


@pytest.mark.e2e
def test_data_check_accepts_commas_and_repeats(workdir) -> None:
    out = subprocess.run([sys.executable, "-m", "signals.cli", "data", "check", "-s", "AAPL,MSFT", "-s", "ibm", "--json"],
                         capture_output=True, text=True, cwd=workdir, timeout=120)
    assert out.returncode == 0, out.stderr
    assert sorted(r["symbol"] for r in json.loads(out.stdout)["symbols"]) == ["AAPL", "IBM", "MSFT"]


@pytest.mark.e2e
def test_a_closed_pipe_is_not_an_error(workdir) -> None:
    """`signals features list | head`: the reader leaves before the command writes."""
    proc = subprocess.Popen([sys.executable, "-m", "signals.cli", "features", "list"], cwd=workdir,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # no reader any more: the first write fails with EPIPE
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err.decode()
    assert b"Traceback" not in err and b"Exception ignored" not in err, err.decode()
