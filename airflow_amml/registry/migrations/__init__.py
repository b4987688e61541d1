"""Alembic migrations of the registry tables (run by `ModelRegistry`, never imported as code)."""
