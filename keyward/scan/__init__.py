"""Scanning: Source -> Chunk -> Engine -> Finding.

This package is on the pre-commit path: importing it must stay cheap and must not import
boto3, botocore, hvac, SQLAlchemy, APScheduler or psycopg (a test checks it).
"""
