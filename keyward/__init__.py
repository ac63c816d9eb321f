"""keyward: find hardcoded secrets, keep an inventory of them, and rotate them."""

__version__ = "0.1.0"
