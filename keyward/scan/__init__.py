"""Scanning: request -> Source -> work -> runner -> Engine -> post-pass -> Finding.

* :mod:`keyward.scan.request`: the frozen, validated :class:`ScanRequest` a command builds;
* :mod:`keyward.scan.sources`: sources only yield work (file batches, commit batches, staged
  hunks, environment variables, Lambda configurations) that turns into chunks where it is
  matched;
* :mod:`keyward.scan.runner`: the one place that drives the engine, with the one process pool;
  :mod:`keyward.scan.engine_spec` says how each process builds its engine;
* :mod:`keyward.scan.engine` (and :mod:`keyward.scan.variables` for files that declare
  variables) matches chunks; :mod:`keyward.scan.postpass` is the stage after matching;
* :mod:`keyward.scan.result`, :mod:`keyward.scan.baseline`, :mod:`keyward.scan.report`.

``keyward.scan`` imports nothing from the inventory, rotation, verification or the CLI.

This package is on the pre-commit path: importing it must stay cheap and must not import
boto3, botocore, hvac, SQLAlchemy, APScheduler or psycopg (a test checks it).
"""
