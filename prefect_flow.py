"""Run the Prefect training flow once: ``python prefect_flow.py`` (= ``credit-risk flow run``).

Settings come from the environment (``CREDIT_RISK_*``, ``MLFLOW_TRACKING_URI``); the flow
itself lives in :mod:`credit_risk.flows`.
"""

import os

# Prefect's temporary server gives up after 20 s by default, too short on a busy machine.
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")

from credit_risk.flows import training_flow  # after the variable: Prefect reads it on import

if __name__ == "__main__":
    training_flow()
