"""The evaluation report a reviewer opens before approving: PNG plots and one HTML page beside them.

Everything here is computed from what Evaluate already has (the test rows' actual values, each
candidate's predictions, the tuned booster, evaluation.json); the page needs no network to view.
matplotlib is the XGBoost image's own (3.10.9 in its requirements.txt), drawn with the Agg backend.
"""

from __future__ import annotations

import html
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display in a container; must precede pyplot

import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402
import numpy as np  # noqa: E402

from container import write_bytes_atomic  # noqa: E402
from data_checks import format_number  # noqa: E402
from features import feature_names, transform_features  # noqa: E402

REPORT_DIR = "report"
REPORT_PAGE = "index.html"
# Every plot is this many pixels: (width, height) = FIGURE_INCHES * DPI.
FIGURE_INCHES, DPI = (9.0, 5.0), 100
PLOT_SIZE = (int(FIGURE_INCHES[0] * DPI), int(FIGURE_INCHES[1] * DPI))
# Scatter plots draw at most this many rows (a seeded sample) so a large test split stays readable.
SCATTER_ROWS = 5000
TOP_FEATURES = 15
EXPLAINED_ROWS = 3
CANDIDATE_COLOURS = {"xgboost": "#1f77b4", "baseline": "#ff7f0e", "champion": "#2ca02c"}


def gate_verdict(report: dict, min_r2: float, max_rmse: float, champion_tolerance: float) -> dict:
    """The QualityGate's three conditions on the chosen model, each with its figure and threshold.

    The ConditionStep decides; this states the same conditions in words for the reviewer.
    """
    metrics, champion = report["regression_metrics"], report["champion"]
    r2, rmse = metrics["r2"]["value"], metrics["rmse"]["value"]
    compared = champion["compared"] == "yes"
    checks = [
        {"criterion": "test R² at least MinR2", "parameter": "MinR2", "value": f"{r2:.3f}",
         "threshold": f"{min_r2:g}", "passed": r2 >= min_r2},
        {"criterion": "test RMSE at most MaxRmse (0 = off)", "parameter": "MaxRmse", "value": format_number(rmse),
         "threshold": format_number(max_rmse), "passed": max_rmse <= 0 or rmse <= max_rmse},
        {"criterion": "RMSE at most ChampionTolerance above the approved champion's", "parameter": "ChampionTolerance",
         "value": f"{champion['worse_by']:+.1%}" if compared else "no champion compared",
         "threshold": f"{champion_tolerance:.1%}",
         "passed": not compared or champion["worse_by"] <= champion_tolerance},
    ]
    failed = [check["parameter"] for check in checks if not check["passed"]]
    return {"passed": not failed, "checks": checks, "failed": " and ".join(failed) or "none"}


def _figure(columns: int = 1):
    return plt.subplots(1, columns, figsize=FIGURE_INCHES, dpi=DPI, squeeze=False)


def _save(figure, path: Path) -> None:
    figure.tight_layout()
    figure.savefig(path, dpi=DPI)  # never bbox_inches="tight": it would change the stated size
    plt.close(figure)


def _sample(count: int, seed: int) -> np.ndarray:
    if count <= SCATTER_ROWS:
        return np.arange(count)
    return np.sort(np.random.default_rng(seed).choice(count, SCATTER_ROWS, replace=False))


def _compact(value: float) -> str:
    for divisor, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= divisor:
            return f"{value / divisor:.3g}{suffix}"
    return f"{value:.3g}"


def _compact_ticks(*scales) -> None:
    for scale in scales:
        scale.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda value, _: _compact(value)))


def plot_predicted_vs_actual(actual, predictions: dict, path: Path, seed: int) -> None:
    figure, axes = _figure(len(predictions))
    rows = _sample(len(actual), seed)
    low, high = float(np.min(actual)), float(np.max(actual))
    for axis, (name, predicted) in zip(axes[0], predictions.items()):
        axis.scatter(actual[rows], predicted[rows], s=6, alpha=0.5, color=CANDIDATE_COLOURS.get(name))
        axis.plot([low, high], [low, high], color="black", linewidth=1)
        error = float(np.sqrt(np.mean((actual - predicted) ** 2)))
        axis.set_title(f"{name}: RMSE {format_number(error)}")
        axis.set_xlabel("actual")
        axis.set_ylabel("predicted")
        _compact_ticks(axis.xaxis, axis.yaxis)
    _save(figure, path)


def plot_residuals(actual, predicted, name: str, path: Path, seed: int) -> None:
    figure, axes = _figure()
    axis, rows = axes[0][0], _sample(len(actual), seed)
    axis.scatter(predicted[rows], (actual - predicted)[rows], s=6, alpha=0.5, color=CANDIDATE_COLOURS.get(name))
    axis.axhline(0, color="black", linewidth=1)
    axis.set_title(f"{name}: residuals (actual - predicted) against predicted")
    axis.set_xlabel("predicted")
    axis.set_ylabel("residual")
    _compact_ticks(axis.xaxis, axis.yaxis)
    _save(figure, path)


def target_bands(actual, bands: int = 10) -> list[tuple[float, float, np.ndarray]]:
    """Up to `bands` quantile bands of the actual values (fewer when values repeat): (low, high, rows)."""
    edges = np.unique(np.quantile(actual, np.linspace(0, 1, bands + 1)))
    if len(edges) < 2:
        return [(float(edges[0]), float(edges[0]), np.arange(len(actual)))]
    index = np.clip(np.searchsorted(edges, actual, side="right") - 1, 0, len(edges) - 2)
    return [(float(edges[i]), float(edges[i + 1]), np.flatnonzero(index == i)) for i in range(len(edges) - 1)]


def plot_error_by_band(actual, predictions: dict, path: Path) -> None:
    bands = [band for band in target_bands(actual) if len(band[2])]
    figure, axes = _figure()
    axis = axes[0][0]
    width = 0.8 / len(predictions)
    positions = np.arange(len(bands))
    for offset, (name, predicted) in enumerate(predictions.items()):
        errors = [float(np.mean(np.abs(actual[rows] - predicted[rows]))) for _, _, rows in bands]
        axis.bar(positions + offset * width, errors, width, label=name, color=CANDIDATE_COLOURS.get(name))
    axis.set_xticks(positions + width * (len(predictions) - 1) / 2,
                    [f"{_compact(low)}–{_compact(high)}" for low, high, _ in bands], rotation=30, fontsize=8)
    axis.set_title("mean absolute error by band of the actual value (test rows)")
    axis.set_xlabel("actual value band")
    axis.set_ylabel("mean absolute error")
    _compact_ticks(axis.yaxis)
    axis.legend()
    _save(figure, path)


def feature_gain(booster, names: list[str]) -> list[tuple[str, float]]:
    """The booster's features by total gain, largest first (a feature never split on has none)."""
    scores = booster.get_score(importance_type="total_gain")
    named = [(names[int(key[1:])] if key.startswith("f") and key[1:].isdigit() else key, value)
             for key, value in scores.items()]
    return sorted(named, key=lambda item: -item[1])


def plot_feature_importance(gains: list[tuple[str, float]], path: Path) -> None:
    figure, axes = _figure()
    axis, top = axes[0][0], gains[:TOP_FEATURES][::-1]
    axis.barh([name for name, _ in top], [value for _, value in top], color=CANDIDATE_COLOURS["xgboost"])
    axis.set_title(f"xgboost: the {len(top)} features with the largest total gain")
    axis.set_xlabel("total gain")
    axis.tick_params(axis="y", labelsize=8)
    _save(figure, path)


def explained_rows(actual) -> list[int]:
    """The test rows nearest the 10th, 50th and 90th percentile of the actual value."""
    targets = np.quantile(actual, [0.1, 0.5, 0.9][:EXPLAINED_ROWS])
    return list(dict.fromkeys(int(np.argmin(np.abs(actual - target))) for target in targets))


def plot_row_contributions(contributions: np.ndarray, names: list[str], rows: list[int], actual, predicted,
                           scale: str, path: Path) -> None:
    """Each explained row's largest SHAP contributions: `contributions` holds XGBoost's pred_contribs for
    `rows`, one line each, the bias in the last column."""
    figure, axes = _figure(len(rows))
    for axis, row, row_contributions in zip(axes[0], rows, contributions):
        values = row_contributions[:-1]
        top = np.argsort(-np.abs(values))[:8][::-1]
        axis.barh([names[i] for i in top], values[top],
                  color=["#2ca02c" if values[i] > 0 else "#d62728" for i in top])
        axis.axvline(0, color="black", linewidth=0.8)
        axis.set_title(f"row {row}\nactual {_compact(actual[row])}, predicted {_compact(predicted[row])}", fontsize=9)
        axis.set_xlabel(f"contribution ({scale})", fontsize=8)
        axis.tick_params(axis="y", labelsize=7)
    _save(figure, path)


def write_plots(directory: Path, actual, predictions: dict, chosen: str, booster, spec: dict, test,
                seed: int) -> dict[str, str]:
    """Every plot as a PNG in `directory`; returns file name -> caption. ``booster`` is the tuned model, ``spec``
    its feature spec and ``test`` the test rows (raw), of which only the explained ones are encoded."""
    import xgboost

    directory.mkdir(parents=True, exist_ok=True)
    scale = "log of the target, as the model fits it" if spec["target_transform"] == "log1p" else "target units"
    rows = explained_rows(actual)
    contributions = booster.predict(xgboost.DMatrix(transform_features(test.iloc[rows], spec)), pred_contribs=True)
    names = feature_names(spec)
    captions = {
        "predicted-vs-actual.png": "Predicted against actual value on the test rows, every candidate side by side "
                                   "(the line is a perfect prediction).",
        "residuals.png": f"Residuals of the chosen model ({chosen}) against its prediction: a trend or a funnel "
                         "means errors depend on the size of the value.",
        "error-by-band.png": "Mean absolute error per band of the actual value (deciles of the test rows): where "
                             "each model is weakest.",
        "feature-importance.png": "The tuned XGBoost model's most important features by total gain.",
        "row-contributions.png": "What drove the tuned XGBoost model's prediction for three test rows (near the "
                                 f"10th, 50th and 90th percentile): XGBoost's own SHAP values, in {scale}; green "
                                 "raises the prediction, red lowers it.",
    }
    plot_predicted_vs_actual(actual, predictions, directory / "predicted-vs-actual.png", seed)
    plot_residuals(actual, predictions[chosen], chosen, directory / "residuals.png", seed)
    plot_error_by_band(actual, predictions, directory / "error-by-band.png")
    plot_feature_importance(feature_gain(booster, names), directory / "feature-importance.png")
    plot_row_contributions(contributions, names, rows, actual, predictions["xgboost"], scale,
                           directory / "row-contributions.png")
    return captions


def _cell(text, **data) -> str:
    attributes = "".join(f' data-{key}="{html.escape(str(value))}"' for key, value in data.items())
    return f"<td{attributes}>{html.escape(str(text))}</td>"


def metrics_rows(report: dict) -> list[tuple[str, dict, float | None]]:
    """(name, regression_metrics, validation RMSE) of every candidate, then the champion when it was scored."""
    rows = [(name, candidate["regression_metrics"], candidate["validation_rmse"])
            for name, candidate in report["candidates"].items()]
    if report["champion"].get("compared") == "yes":
        rows.append((f"champion {report['champion']['name']}", report["champion"]["regression_metrics"], None))
    return rows


def format_metric(name: str, value: float) -> str:
    return f"{value:.3f}" if name == "r2" else format_number(value)


def report_page(report: dict, captions: dict[str, str], title: str) -> str:
    """The HTML page: verdict, metrics (numbers as evaluation.json holds them, formatted), data warnings, plots."""
    chosen = report["chosen"]["candidate"]
    gate = report["gate"]
    metric_rows = []
    for name, metrics, validation in metrics_rows(report):
        cells = [f"<th>{html.escape(name)}{' (chosen)' if name == chosen else ''}</th>",
                 _cell("—" if validation is None else format_number(validation), candidate=name,
                       metric="validation_rmse")]
        for metric in ("rmse", "mae", "r2"):
            entry = metrics[metric]
            cells.append(_cell(format_metric(metric, entry["value"]), candidate=name, metric=metric))
            cells.append(_cell(format_metric(metric, entry["standard_deviation"]), candidate=name,
                               metric=f"{metric}_sd"))
        metric_rows.append(f"<tr>{''.join(cells)}</tr>")
    gate_rows = [f"<tr>{_cell(check['criterion'])}{_cell(check['value'])}{_cell(check['threshold'])}"
                 f"{_cell('pass' if check['passed'] else 'FAIL')}</tr>" for check in gate["checks"]]
    warnings = report["data"]["warnings"]
    warning_items = "".join(f"<li>{html.escape(text)}</li>" for text in warnings) or "<li>none</li>"
    figures = "".join(
        f'<figure><img src="{html.escape(name)}" width="{PLOT_SIZE[0]}" height="{PLOT_SIZE[1]}" '
        f'alt="{html.escape(caption)}"><figcaption>{html.escape(caption)}</figcaption></figure>'
        for name, caption in captions.items())
    verdict = "passes" if gate["passed"] else "FAILS"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;max-width:960px;margin:2em auto;color:#222}}
table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}
.verdict{{font-size:1.3em}}figure{{margin:2em 0}}figcaption{{color:#555}}</style></head>
<body><h1>{html.escape(title)}</h1>
<p class="verdict" id="verdict">The chosen model ({html.escape(chosen)}) {verdict} the quality gate.</p>
<p>Chosen because of the {html.escape(report['chosen']['reason'])}. {html.escape(report['readable']['champion'])}.</p>
<h2>Metrics on the test rows</h2>
<p>Target units; ± is the bootstrap standard deviation over resamples of the test rows. Validation RMSE
is what each training job reported, and decided the choice.</p>
<table id="metrics"><tr><th>model</th><th>validation RMSE</th><th>test RMSE</th><th>±</th><th>MAE</th>
<th>±</th><th>R²</th><th>±</th></tr>
{''.join(metric_rows)}</table>
<h2>Quality gate</h2>
<table id="gate"><tr><th>condition</th><th>value</th><th>threshold</th><th>result</th></tr>
{''.join(gate_rows)}</table>
<h2>Data warnings</h2><ul id="warnings">{warning_items}</ul>
<h2>Plots</h2>{figures}
</body></html>
"""


def write_report(directory: Path, report: dict, captions: dict[str, str], title: str) -> Path:
    page = directory / REPORT_PAGE
    write_bytes_atomic(page, report_page(report, captions, title).encode("utf-8"))
    return page
