"""Real services (PostgreSQL, HDFS) for the tests; the fixtures live in tests/services/fixtures.py."""
