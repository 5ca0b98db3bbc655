"""The training run, defined once: validate -> tune -> fit -> register -> gate -> export.

The model family (``Settings.family``) is the forest, tuned, a points scorecard
(:mod:`credit_risk.scorecard`) or gradient boosting with fixed parameters
(:func:`credit_risk.families.build_gbm_pipeline`); the last two have nothing to tune and skip
the search.

The recipe (hyperparameters and threshold) is fitted on the training split and scored on the
test split; with ``Settings.fit_rows`` ``all`` (the default) the same recipe is then refitted on
every row the run read, and that model is registered and exported (:func:`fit_exported`): the
test figures describe the recipe, the exported model has seen every row. Its dataset
fingerprint, reasons' approved reference and drift reference follow the rows it was fitted on.

:func:`run_training` orders the steps; ``credit-risk train`` runs them in this process
(:func:`train`) and the Prefect flow runs the same sequence with a step runner that makes each
named step a task (:mod:`credit_risk.flows`). Steps hand each other small values (parameters,
run ids, model URIs, metric dicts), never DataFrames or fitted models: a step that needs the
data re-reads the (small, checksummed) file, and with outcomes the labelled decisions whose
outcomes were known when the run started (:mod:`credit_risk.training_data`), and re-splits them
with the same seed; the fitted model travels through MLflow, so a retried step recomputes from
the same inputs.

The package, by step: :mod:`.fitting` (split, search, fit, test evaluation, the exported
refit, its references), :mod:`.recording` (MLflow run, registered version, gate step,
export) and :mod:`.sequence` (the steps in order, the step runner, :func:`train`). The
package's face is what callers outside it use: the sequence and the fitting steps that the
benchmarks reuse; the recording steps run only inside the sequence.
"""

from credit_risk.train.fitting import (
    Evaluation,
    Exported,
    LoggedRun,
    SearchSummary,
    Split,
    drift_reference,
    exported_rows,
    final_params,
    fit_evaluate,
    fit_exported,
    fit_on_split,
    gbm_params,
    reason_reference,
    run_data,
    search_params,
    split_training_data,
    with_reasons,
)
from credit_risk.train.sequence import (
    DataSummary,
    FitSummary,
    StepRunner,
    TrainingResult,
    TrainingRun,
    call_directly,
    result_summary,
    run_training,
    train,
)

__all__ = [
    "DataSummary",
    "Evaluation",
    "Exported",
    "FitSummary",
    "LoggedRun",
    "SearchSummary",
    "Split",
    "StepRunner",
    "TrainingResult",
    "TrainingRun",
    "call_directly",
    "drift_reference",
    "exported_rows",
    "final_params",
    "fit_evaluate",
    "fit_exported",
    "fit_on_split",
    "gbm_params",
    "reason_reference",
    "result_summary",
    "run_data",
    "run_training",
    "search_params",
    "split_training_data",
    "train",
    "with_reasons",
]
