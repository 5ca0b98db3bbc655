# syntax=docker/dockerfile:1
# Credit-risk images, two targets:
#   runtime (the default, last stage): the whole project. Serves the API by default
#     (`uvicorn api:app`) and runs any CLI command, e.g.
#     `docker run --rm credit-risk credit-risk train`; the same image runs the MLflow tracking
#     server, the Prefect server and the trainer in docker-compose.yml.
#   serve (`--target serve`): the API alone, from an exported model folder whose verified
#     fast-path cache is intact (requirements-serve.txt: no MLflow, scikit-learn or numba).
# Without Docker Hub (this project's machines): containers/base-image.sh builds the base image
# from Debian packages and containers/podman.sh builds with podman (see README, Containers).

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

# ---- serve-build: the serving subset of the lock and the package -------------------------
FROM python:3.11-slim-bookworm AS serve-build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /build
COPY requirements-serve.txt ./
# Test suites and pip itself are not needed to serve: removed from the copied virtualenv.
RUN pip install --no-cache-dir -r requirements-serve.txt \
    && find /opt/venv/lib -depth -type d -name tests -prune -exec rm -rf {} + \
    && find /opt/venv/lib -name '*.pyi' -delete
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install --no-cache-dir --no-deps . \
    && pip uninstall --yes --quiet pip setuptools

# ---- serve: the API only, on an exported model with a verified fast-path cache ------------
FROM python:3.11-slim-bookworm AS serve
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    CREDIT_RISK_MODEL_DIR=/app/models/champion \
    CREDIT_RISK_DECISION_LOG_URL=sqlite:////app/state/decisions.db
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --home-dir /app --shell /usr/sbin/nologin app
COPY --from=serve-build /opt/venv /opt/venv
WORKDIR /app
COPY --chown=app:app api.py ./
RUN mkdir -p /app/models /app/state \
    && chown app:app /app/models /app/state
USER 10001:10001
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=4).status == 200 else 1)"]
CMD ["uvicorn", "api:app", "--host", "0.0.0.0", "--port", "8000"]

# ---- runtime: the virtualenv, the shipped data and the entry points, as a non-root user ----
FROM python:3.11-slim-bookworm AS runtime
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    CREDIT_RISK_MODEL_DIR=/app/models/champion \
    CREDIT_RISK_ARTIFACT_LOCATION=/app/state/mlruns \
    CREDIT_RISK_DECISION_LOG_URL=sqlite:////app/state/decisions.db \
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
