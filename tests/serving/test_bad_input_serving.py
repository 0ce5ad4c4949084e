"""Bad-input corpus, prediction and serving side (issue 13.8): every case asserts the status or exit
code, that the message names the problem, and that nothing is left behind (no trade, no file).

The data/config/cache side of the corpus lives in tests/bad_input/.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.monitoring.support import shared_env

pytestmark = pytest.mark.integration

AS_OF = "2012-06-29"


@pytest.fixture
def env(monkeypatch):
    e = shared_env()
    monkeypatch.chdir(e.workdir)
    return e


class NewListing:
    """The sample provider, except that ``symbol`` has only its last ``n`` bars (a new listing)."""

    def __init__(self, provider, symbol: str = "AAPL", n: int = 3):
        self._p, self.symbol, self.n = provider, symbol, n

    def bars(self, symbol, start=None, end=None):
        frame = self._p.bars(symbol, start, end)
        return frame.loc[:AS_OF].tail(self.n) if symbol == self.symbol else frame

    def __getattr__(self, name):
        return getattr(self._p, name)


def test_generate_gives_a_new_listing_none_with_a_warning(env, tmp_path, caplog):
    from signals.data import get_provider
    from signals.lifecycle.generate import run_generate
    from signals.monitoring.predictions_log import PredictionsLog
    from signals.serving.schema import validate_record

    sink: list = []
    with caplog.at_level(logging.WARNING, logger="signals"):
        signals = run_generate(env.settings, as_of=AS_OF, provider=NewListing(get_provider(env.settings)),
                               predictions_path=tmp_path / "p.parquet", publish=False, outcome=sink)
    out = sink[0]
    aapl = next(r for r in out.records if r["symbol"] == "AAPL")
    assert aapl["signal"] == "NONE" and aapl["reason"] == "insufficient_history"
    assert 0 <= aapl["p_up"] <= 1  # probabilities are still reported
    assert "AAPL" not in {s.symbol for s in signals}  # no trade
    assert {r["symbol"] for r in out.records} == {"AAPL", "GOOG", "IBM", "MSFT"}  # every symbol
    assert all(validate_record(r) == [] for r in out.records)
    assert any("AAPL" in m and "insufficient_history" in m for m in caplog.messages)
    assert out.guarded == {"AAPL": "insufficient_history"}
    logged = PredictionsLog(tmp_path / "p.parquet").read().set_index("symbol")
    assert logged.loc["AAPL", "direction"] == "NONE"


def test_strategy_never_trades_a_three_bar_listing(env):
    from signals.data import get_provider
    from signals.serving.pyfunc import load_predictor
    from signals.trading.strategy import MLSignalStrategy, bars_to_frame, frame_to_bars

    provider = get_provider(env.settings)
    strat = MLSignalStrategy(provider, env.settings.model_copy(
        update={"ml": env.settings.ml.model_copy(update={"confidence_threshold": 0.0})}),
        predictor=load_predictor(env.champion.path), model_version="x")
    bars = {"AAPL": frame_to_bars(provider.bars("AAPL").loc[:AS_OF].tail(3)),
            "MSFT": frame_to_bars(provider.bars("MSFT").loc[:AS_OF])}
    preds = strat.predict_frames({s: bars_to_frame(b) for s, b in bars.items()}).set_index("symbol")
    assert preds.loc["AAPL", "signal"] == "NONE" and preds.loc["AAPL", "reason"] == "insufficient_history"
    signals = strat.generate_signals(bars)
    assert [s.symbol for s in signals] == ["MSFT"]  # threshold 0: every judged row trades, AAPL does not


# ----------------------------------------------------------------------------- the served model
def _post(url: str, payload: dict | str) -> tuple[int, dict]:
    import urllib.error
    import urllib.request

    data = payload if isinstance(payload, str) else json.dumps(payload)  # json.dumps writes NaN / Infinity literals
    req = urllib.request.Request(url, data.encode(), {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        body = err.read() or b"{}"
        try:
            return err.code, json.loads(body)
        except json.JSONDecodeError:
            return err.code, {"message": body.decode(errors="replace")}


def _split(columns: list[str], data: list[list]) -> dict:
    return {"dataframe_split": {"columns": columns, "data": data}}


@pytest.fixture(scope="module")
def server(registry_template, tmp_path_factory):
    """One `signals serve` for every HTTP case of this module (a server start costs seconds)."""
    import os
    import shutil
    import signal
    import subprocess

    from signals.registry.client import ModelRegistry
    from tests.conftest import free_port, wait_healthy
    from tests.registry.support import settings_for

    workdir = tmp_path_factory.mktemp("bad-input-serve")
    shutil.copy(registry_template.db, workdir / "mlflow.db")
    with pytest.MonkeyPatch.context() as mp:  # module scope runs before the autouse env cleaner
        for key in [k for k in os.environ if k.startswith(("SA_", "MLFLOW_"))]:
            mp.delenv(key)
        settings = settings_for(workdir, enabled=False)
        reg = ModelRegistry.from_settings(settings, mirror=False)
        run = registry_template.runs["base"]
        reg.register(None, run.model_uri, run.metrics, run_id=run.run_id)
        reg.promote("1")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SA_", "MLFLOW_"))}
    env.update({"SA_MLFLOW__TRACKING_URI": settings.mlflow.tracking_uri, "SA_REDIS__ENABLED": "false",
                "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"})
    log_path = workdir / "serve.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "signals.cli", "serve", "--port", str(port)], cwd=workdir,
                                env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(base, proc, log_path, timeout=60, what="signals serve")
        yield base, port, env, workdir
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=15)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


from tests.registry.support import FEATURES, registry_template  # noqa: E402,F401 - fixture

GOOD = [0.1] * len(FEATURES)


def _one(server, columns, row) -> tuple[int, dict]:
    return _post(f"{server[0]}/invocations", _split(columns, [row]))


def test_all_null_row_is_none_not_a_trade(server):
    status, body = _one(server, FEATURES, [None] * len(FEATURES))
    assert status == 200, body
    rec = body["predictions"][0]
    assert rec["signal"] == "NONE" and rec["reason"] == f"missing_features: all {len(FEATURES)}"


@pytest.mark.parametrize("literal", [float("nan"), float("inf"), float("-inf")])
def test_json_nan_and_infinity_literals_are_missing_values(server, literal):
    status, body = _one(server, FEATURES, [literal] * len(FEATURES))
    assert status == 200, body
    assert body["predictions"][0]["signal"] == "NONE"
    assert body["predictions"][0]["reason"].startswith("missing_features: all")


def test_a_row_missing_most_features_names_them(server):
    row = [float("nan")] * 3 + GOOD[3:]
    status, body = _one(server, FEATURES, row)
    assert status == 200, body
    assert body["predictions"][0] == {**body["predictions"][0], "signal": "NONE",
                                      "reason": "missing_features: f0, f1, f2"}


def test_a_good_row_is_judged_and_describes_itself(server):
    from signals.serving.schema import validate_record

    status, body = _post(f"{server[0]}/invocations", _split([*FEATURES, "symbol", "as_of"], [[*GOOD, "AAPL", "2013-03-01"]]))
    assert status == 200, body
    rec = body["predictions"][0]
    assert validate_record(rec) == []
    assert rec["symbol"] == "AAPL" and rec["as_of"] == "2013-03-01T00:00:00+00:00"
    assert rec["valid_until"] == "2013-03-08T00:00:00+00:00" and rec["horizon"] == 5
    assert rec["reason"] is None or rec["signal"] == "NONE"


def test_missing_column_400_leads_with_the_column_names(server):
    status, body = _one(server, FEATURES[2:], GOOD[2:])
    assert status == 400
    assert body["message"].startswith("missing feature column(s): f0, f1 (2 of the 8"), body
    assert len(body["message"]) < 300  # no frame dump


def test_wrong_dtype_column_is_a_400_naming_the_column(server):
    status, body = _one(server, FEATURES, ["x", *GOOD[1:]])
    assert status == 400
    assert "f0" in body["message"]


def test_extra_unknown_columns_are_ignored(server):
    status, body = _post(f"{server[0]}/invocations", _split([*FEATURES, "surprise"], [[*GOOD, 1.0]]))
    assert status == 200, body
    assert len(body["predictions"]) == 1 and "surprise" not in body["predictions"][0]


def test_empty_payloads(server):
    status, body = _post(f"{server[0]}/invocations", _split(FEATURES, []))
    assert status == 200 and body["predictions"] == []
    status, body = _post(f"{server[0]}/invocations", {})
    assert status == 400 and "dataframe_split" in json.dumps(body)
    status, body = _post(f"{server[0]}/invocations", "{not json")
    assert status == 400


def _cli(monkeypatch, capsys, *args, **env):
    from signals.cli import main

    for k, v in env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setattr(sys, "argv", ["signals", *args])
    code = 0
    try:
        main()
    except SystemExit as exc:
        code = exc.code
    return code, capsys.readouterr().err


def test_busy_port_is_a_one_line_error(server, monkeypatch, capsys):
    base, port, env, workdir = server
    monkeypatch.chdir(workdir)
    code, err = _cli(monkeypatch, capsys, "serve", "--port", str(port),
                     SA_MLFLOW__TRACKING_URI=env["SA_MLFLOW__TRACKING_URI"], SA_REDIS__ENABLED="false")
    assert code == 1 and f"Error: port {port} is in use" in err and "Traceback" not in err


def test_serving_an_unknown_model_is_a_clear_error(server, monkeypatch, capsys):
    from tests.conftest import free_port

    base, port, env, workdir = server
    monkeypatch.chdir(workdir)
    code, err = _cli(monkeypatch, capsys, "serve", "--port", str(free_port()),
                     SA_MLFLOW__TRACKING_URI=env["SA_MLFLOW__TRACKING_URI"], SA_REDIS__ENABLED="false",
                     SA_MLFLOW__MODEL_NAME="no-such-model")
    assert code == 1 and "no-such-model" in err and "Traceback" not in err
    assert not (Path(workdir) / "mlflow.db-journal").exists()


def test_cli_generate_on_a_data_dir_with_a_three_bar_listing(env, tmp_path, monkeypatch, capsys, caplog):
    """`signals data export`, cut AAPL to its last 3 bars, `signals generate`: AAPL is NONE with a
    warning naming it, every symbol is in the JSON, exit 0."""
    from signals.serving.schema import validate_record

    base = dict(SA_MLFLOW__TRACKING_URI=env.settings.mlflow.tracking_uri, SA_REDIS__ENABLED="false",
                SA_FEATURES__CACHE_DIR=str(tmp_path / "cache"), SA_ML__CONFIDENCE_THRESHOLD="0.4")
    code, err = _cli(monkeypatch, capsys, "data", "export", str(tmp_path / "data"), **base)
    assert code == 0, err
    path = tmp_path / "data" / "bars" / "AAPL.parquet"
    bars = pd.read_parquet(path)
    bars[pd.to_datetime(bars["date"]) <= AS_OF].tail(3).to_parquet(path)
    data_env = {**base, "SA_DATA__PROVIDER": "parquet", "SA_DATA__PATH": str(tmp_path / "data")}
    log_before = sorted(Path(".").rglob("*.parquet"))

    monkeypatch.setattr(sys, "argv", ["signals", "generate", "--as-of", AS_OF, "--json", "--no-publish"])
    from signals.cli import main

    for k, v in data_env.items():
        monkeypatch.setenv(k, v)
    with caplog.at_level(logging.WARNING, logger="signals"):  # the CLI logs warnings to stderr
        try:
            main()
            code = 0
        except SystemExit as exc:
            code = exc.code
    captured = capsys.readouterr()
    assert code == 0, captured.err
    doc = json.loads(captured.out)
    recs = {r["symbol"]: r for r in doc["signals"]}
    assert set(recs) == {"AAPL", "GOOG", "IBM", "MSFT"}
    assert recs["AAPL"]["signal"] == "NONE" and recs["AAPL"]["reason"] == "insufficient_history"
    assert all(validate_record(r) == [] for r in doc["signals"])
    assert any("AAPL" in m and "insufficient_history" in m for m in caplog.messages)
    assert len(sorted(Path(".").rglob("*.parquet"))) <= len(log_before) + 1  # only the predictions log

    monkeypatch.setattr(sys, "argv", ["signals", "generate", "--as-of", AS_OF, "--no-publish"])
    try:
        main()
    except SystemExit as exc:
        assert exc.code in (0, None)
    table = capsys.readouterr().out
    aapl_line = next(line for line in table.splitlines() if line.startswith("AAPL"))
    assert "NONE" in aapl_line and "insufficient_history" in aapl_line and "FLAT" not in table.split("\n")[1]


def test_an_unparseable_as_of_is_a_400_naming_the_column(server):
    status, body = _post(f"{server[0]}/invocations", _split([*FEATURES, "as_of"], [[*GOOD, "yesterday"]]))
    assert status == 400
    assert body["message"].startswith("as_of: 'yesterday' is not an ISO date"), body


def test_serve_with_zero_workers_is_a_usage_error(monkeypatch, capsys):
    code, err = _cli(monkeypatch, capsys, "serve", "--workers", "0")
    assert code == 2 and "--workers" in err


def test_train_on_a_three_bar_listing_is_an_error_and_leaves_no_run(env, tmp_path, monkeypatch, capsys):
    import mlflow

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    base = dict(SA_MLFLOW__TRACKING_URI=uri, SA_REDIS__ENABLED="false", SA_FEATURES__CACHE_DIR=str(tmp_path / "cache"))
    code, err = _cli(monkeypatch, capsys, "data", "export", str(tmp_path / "data"), "-s", "AAPL", **base)
    assert code == 0, err
    path = tmp_path / "data" / "bars" / "AAPL.parquet"
    pd.read_parquet(path).tail(3).to_parquet(path)
    monkeypatch.chdir(tmp_path)
    code, err = _cli(monkeypatch, capsys, "train", "-s", "AAPL", SA_DATA__PROVIDER="parquet",
                     SA_DATA__PATH=str(tmp_path / "data"), **base)
    assert code == 1 and "Traceback" not in err and "NaTType" not in err
    assert "Error: no labelled training rows" in err and "AAPL: only 3 bar(s)" in err
    if (tmp_path / "mlflow.db").exists():
        client = mlflow.MlflowClient(tracking_uri=uri)
        runs = [r for e in client.search_experiments() for r in client.search_runs([e.experiment_id])]
        assert [r for r in runs if r.info.status == "RUNNING"] == []
