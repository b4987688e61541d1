"""Alembic migrations of the registry tables (run by `registry/database.py`'s `migrate`, never imported as code)."""
