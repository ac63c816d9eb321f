"""Built-in rotators (registered as entry points in pyproject.toml)."""
