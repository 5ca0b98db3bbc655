-- One database per component on the shared PostgreSQL (run once, on an empty volume).
-- MLflow and Prefect both keep an `alembic_version` table, so they cannot share a database.
CREATE DATABASE mlflow;
CREATE DATABASE prefect;
CREATE DATABASE optuna;
