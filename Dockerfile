# syntax=docker/dockerfile:1
# Credit-risk image: serves the API by default (`uvicorn api:app`), and runs any CLI command,
# e.g. `docker run --rm credit-risk credit-risk train`. The same image runs the MLflow
# tracking server, the Prefect server and the trainer in docker-compose.yml.

# ---- build: a virtualenv with the pinned lock and the package ----------------------------
FROM python:3.11-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /build
# The lock first, alone, so code changes do not reinstall the dependencies.
COPY requirements.txt ./
RUN pip install --no-cache-dir -r requirements.txt
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install --no-cache-dir --no-deps .

# ---- runtime: the virtualenv, the shipped data and the entry points, as a non-root user ----
FROM python:3.11-slim-bookworm AS runtime
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    CREDIT_RISK_MODEL_DIR=/app/models/champion \
    CREDIT_RISK_ARTIFACT_LOCATION=/app/state/mlruns \
    MLFLOW_TRACKING_URI=sqlite:////app/state/mlflow.db
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --home-dir /app --shell /usr/sbin/nologin app
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY --chown=app:app data/raw ./data/raw
COPY --chown=app:app api.py prefect_flow.py ./
# Mount points for named volumes: a fresh volume takes this ownership.
RUN mkdir -p /app/models /app/state /app/mlartifacts \
    && chown app:app /app/models /app/state /app/mlartifacts
USER 10001:10001
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=4).status == 200 else 1)"]
CMD ["uvicorn", "api:app", "--host", "0.0.0.0", "--port", "8000"]
