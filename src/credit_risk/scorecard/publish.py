"""Log a scorecard's table, SQL and information-value report to the active MLflow run."""

from __future__ import annotations

from credit_risk.scorecard.report import format_iv_report, points_csv
from credit_risk.scorecard.sql import score_query
from credit_risk.scorecard.table import PointsTable

ARTIFACT_DIR = "scorecard"
# The table the logged query reads: rename it to your own (columns: the codebook's names).
SQL_SOURCE = "applicants"


def log_scorecard(table: PointsTable, threshold: float, rows: int) -> None:
    """``scorecard/points.csv``, ``scorecard/score.sql`` and ``scorecard/iv_report.txt``.

    Args:
        table: the fitted scorecard.
        threshold: the model's decision threshold (the query's points cut-off).
        rows: training rows it was fitted on (for the report's heading).
    """
    import mlflow

    mlflow.log_text(points_csv(table), f"{ARTIFACT_DIR}/points.csv")
    mlflow.log_text(score_query(table, SQL_SOURCE, threshold) + ";\n", f"{ARTIFACT_DIR}/score.sql")
    mlflow.log_text(format_iv_report(table, rows) + "\n", f"{ARTIFACT_DIR}/iv_report.txt")
