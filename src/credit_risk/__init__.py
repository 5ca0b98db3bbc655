"""Credit-risk MLOps pipeline on the Statlog German Credit data."""

__version__ = "0.1.0"
