"""Versioned schema (Alembic, under `revisions/`) plus the TimescaleDB hypertables and
policies the contract declares.

- `state`: what a database is at (revision, drift), light.
- `catalog`: the live schema described through the plain driver, and the stored description
  of a freshly migrated database: the cheap "no drift" answer, without Alembic.
- `policies`: Timescale policy drift, through any driver.
- `ops`: plan / apply / check with Alembic and SQLAlchemy (loaded only when those run, or
  when the cheap answer is "different" and Alembic has to name each difference).
- `check`: the readiness check `backbone validate` assembles.
"""
