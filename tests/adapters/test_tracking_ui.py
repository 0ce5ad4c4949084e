"""What a model developer sees in the MLflow UI: the classic ML view with a description, unique run
names, source and user on client-created runs, and readable plots."""

from __future__ import annotations

import numpy as np
import pytest

from signals.adapters import tracking as T
from signals.modeling import plots


@pytest.mark.integration
def test_experiments_open_in_the_classic_view_with_a_description(settings) -> None:
    import mlflow

    exp_id = T.configure_mlflow(settings)
    client = mlflow.MlflowClient(tracking_uri=settings.mlflow.tracking_uri)
    tags = client.get_experiment(exp_id).tags
    assert tags["mlflow.experimentKind"] == "custom_model_development"
    assert "baseline" in tags["mlflow.note.content"]
    mon = T.configure_mlflow(settings, settings.mlflow.monitoring_experiment)
    assert "Monitoring" in client.get_experiment(mon).tags["mlflow.note.content"]
    client.set_experiment_tag(exp_id, "mlflow.note.content", "my own words")
    T.configure_mlflow(settings)
    assert client.get_experiment(exp_id).tags["mlflow.note.content"] == "my own words", "never overwritten"

    rid, owned = T.open_client_run(client, exp_id, "promote", {"signals.step": "promote"})
    run = client.get_run(rid)
    assert owned and run.info.run_name.startswith("promote-") and run.info.run_name != "promote"
    assert run.data.tags["mlflow.user"] and run.data.tags["mlflow.source.name"]


def test_run_identity_tags_name_the_user_and_source() -> None:
    tags = T.run_identity_tags()
    assert tags.get("mlflow.user") and tags.get("mlflow.source.name") and tags.get("mlflow.source.type")


def test_feature_importance_marks_synthetic_features() -> None:
    from signals.features.spec import synthetic_features

    synthetic = synthetic_features(["fundamentals", "short_interest"])
    assert synthetic and "rsi_14" not in synthetic
    imp = {synthetic[0]: 0.5, "rsi_14": 0.3, synthetic[1]: 0.2}
    fig = plots.feature_importance(imp, marked=synthetic)
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels == [f"{synthetic[0]} *", "rsi_14", f"{synthetic[1]} *"]  # largest gain first
    assert "2 of 3" in ax.get_legend().get_texts()[0].get_text()


def test_reliability_is_zoomed_with_counts_and_titles_fit() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 3000)
    p = rng.dirichlet([6, 6, 6], 3000)
    title = "Calibration slice reliability of the evaluation model, raw booster vs calibrated, all windows pooled"
    fig = plots.reliability_diagram(y, {"raw": p, "calibrated": 0.5 * p + 0.5 / 3}, title=title)
    ax, counts = fig.axes
    lo, hi = ax.get_xlim()
    assert 0.0 < lo and hi < 0.9, (lo, hi)  # zoomed to the points, not 0..1
    heights = sum(b.get_height() for b in counts.patches)
    assert heights == 2 * 3000, "each curve's bins count every row"
    shown = ax.get_title()
    assert "\n" in shown and shown.replace("\n", " ") == title
    fig.canvas.draw()
    box = ax.title.get_window_extent()
    assert box.x0 >= 0 and box.x1 <= fig.bbox.width, "the title is not cut off"
