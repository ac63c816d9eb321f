"""Rotation: secret stores, rotators and dependents (the outside world), and the state machine.

Nothing here creates a client at import time; heavy libraries (boto3, hvac, psycopg) are
imported only inside the modules that talk to those providers.
"""
