"""The SQL provider and `signals data load-sql` against the real local PostgreSQL."""

from __future__ import annotations

import uuid

import pandas as pd
import pytest

from signals.data.errors import DataError, DataValidationError
from signals.data.parquet import export_provider, write_layout
from signals.data.sample import SampleProvider

pytestmark = pytest.mark.integration

PG_URL = "postgresql://postgres@127.0.0.1:5432/test"


@pytest.fixture
def pg_schema():
    sqlalchemy = pytest.importorskip("sqlalchemy")
    engine = sqlalchemy.create_engine(PG_URL)
    try:
        with engine.connect() as conn:
            conn.execute(sqlalchemy.text("select 1"))
    except Exception as exc:  # noqa: BLE001
        pytest.skip(f"local PostgreSQL not reachable: {exc}")
    schema = f"sig_{uuid.uuid4().hex[:8]}"
    yield schema
    with engine.begin() as conn:
        conn.execute(sqlalchemy.text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
    engine.dispose()


def test_load_sql_then_read_back_equals_parquet(tmp_path, pg_schema) -> None:
    from signals.data.sql import SqlProvider, load_layout_to_sql

    sample = SampleProvider()
    root = export_provider(sample, tmp_path / "layout", ["AAPL", "MSFT"])
    counts = load_layout_to_sql(root, PG_URL, pg_schema)
    assert counts["bars"] == len(sample.bars("AAPL")) + len(sample.bars("MSFT"))
    sql = SqlProvider(PG_URL, schema=pg_schema)
    assert sql.symbols() == ["AAPL", "MSFT"]
    pd.testing.assert_frame_equal(sql.bars("AAPL"), sample.bars("AAPL"), check_freq=False)
    pd.testing.assert_frame_equal(sql.fundamentals(["MSFT"]), sample.fundamentals(["MSFT"]))
    pd.testing.assert_frame_equal(sql.short_interest(["AAPL"]), sample.short_interest(["AAPL"]))
    pd.testing.assert_frame_equal(sql.market_bars("SPY"), sample.market_bars("SPY"), check_freq=False)
    # loading again replaces instead of duplicating
    load_layout_to_sql(root, PG_URL, pg_schema)
    assert len(SqlProvider(PG_URL, schema=pg_schema).bars("MSFT")) == len(sample.bars("MSFT"))


def test_close_only_symbols_load_and_read_back(tmp_path, pg_schema) -> None:
    """skfolio's close-only bars (NULL open/high/low/volume) next to the sample's full bars."""
    from signals.data.skfolio_sp500 import SkfolioProvider
    from signals.data.sql import SqlProvider, load_layout_to_sql

    skfolio = SkfolioProvider()
    root = export_provider(skfolio, tmp_path / "layout", ["KO", "GE"])
    counts = load_layout_to_sql(root, PG_URL, pg_schema)
    assert counts["bars"] == 2 * 8313
    sql = SqlProvider(PG_URL, schema=pg_schema)
    got, report = sql.bars_with_report("KO")
    assert report.close_only
    pd.testing.assert_frame_equal(got, skfolio.bars("KO"), check_freq=False)
    pd.testing.assert_frame_equal(sql.market_bars("SPY"), skfolio.market_bars("SPY"), check_freq=False)
    assert sql.sector_of("GE") == ("Industrials", "")
    # full OHLCV symbols share the tables
    load_layout_to_sql(export_provider(SampleProvider(), tmp_path / "sample", ["IBM"]), PG_URL, pg_schema)
    both = SqlProvider(PG_URL, schema=pg_schema)
    assert not both.bars_with_report("IBM")[1].close_only and both.bars_with_report("KO")[1].close_only


def test_old_not_null_tables_reject_close_only_bars_with_the_fix(tmp_path, pg_schema) -> None:
    import sqlalchemy

    from signals.data.skfolio_sp500 import SkfolioProvider
    from signals.data.sql import load_layout_to_sql

    engine = sqlalchemy.create_engine(PG_URL)
    with engine.begin() as conn:  # the bars table as it was created before close-only bars
        conn.execute(sqlalchemy.text(f"CREATE SCHEMA {pg_schema}"))
        cols = ", ".join(f"{c} DOUBLE PRECISION NOT NULL" for c in ("open", "high", "low", "close", "volume"))
        conn.execute(sqlalchemy.text(f"CREATE TABLE {pg_schema}.bars (symbol TEXT NOT NULL, date DATE NOT NULL, {cols}, "
                                     "adj_close DOUBLE PRECISION, PRIMARY KEY (symbol, date))"))
    engine.dispose()
    root = export_provider(SkfolioProvider(), tmp_path / "layout", ["KO"])
    with pytest.raises(DataError, match=rf"{pg_schema}\.bars .*ALTER TABLE {pg_schema}\.bars ALTER COLUMN open DROP NOT NULL"):
        load_layout_to_sql(root, PG_URL, pg_schema)


def test_bad_layout_loads_nothing(tmp_path, pg_schema) -> None:
    from signals.data.sql import SqlProvider, load_layout_to_sql

    good = pd.DataFrame({"date": pd.bdate_range("2020-01-01", periods=3), "open": 1.0, "high": 1.0, "low": 1.0,
                         "close": 1.0, "volume": 10.0})
    bad = good.copy()
    bad.loc[1, "close"] = -1.0
    root = write_layout(tmp_path / "d", {"universe": pd.DataFrame({"symbol": ["AAA", "BBB"], "sector": "T",
                                                                    "sector_etf": "X"}),
                                         "bars": {"AAA": good, "BBB": bad}})
    with pytest.raises(DataValidationError, match="'BBB'.*non-positive"):
        load_layout_to_sql(root, PG_URL, pg_schema)
    with pytest.raises(DataError):  # nothing was created: the universe table does not exist
        SqlProvider(PG_URL, schema=pg_schema).symbols()


def test_cli_load_sql(tmp_path, pg_schema) -> None:
    import subprocess
    import sys

    root = export_provider(SampleProvider(), tmp_path / "layout", ["IBM"])
    out = subprocess.run(
        [sys.executable, "-m", "signals.cli", "data", "load-sql", str(root), "--url", PG_URL, "--schema", pg_schema],
        capture_output=True, text=True, timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert "bars" in out.stdout
    env_out = subprocess.run(
        [sys.executable, "-m", "signals.cli", "data", "check", "--json"],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
        env={**__import__("os").environ, "SA_DATA__PROVIDER": "sql", "SA_DATA__SQL_URL": PG_URL,
             "SA_DATA__SQL_SCHEMA": pg_schema},
    )
    assert env_out.returncode == 0, env_out.stderr
    assert '"IBM"' in env_out.stdout
