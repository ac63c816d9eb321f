"""Built-in stores (registered as entry points in pyproject.toml)."""
