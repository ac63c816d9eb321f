"""Built-in dependents (registered as entry points in pyproject.toml)."""
