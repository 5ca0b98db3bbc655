"""Run the Prefect training flow once: ``python prefect_flow.py`` (= ``credit-risk flow run``).

Settings come from the environment (``CREDIT_RISK_*``, ``MLFLOW_TRACKING_URI``); the flow
itself lives in :mod:`credit_risk.flows`.
"""

from credit_risk.flows import training_flow

if __name__ == "__main__":
    training_flow()
