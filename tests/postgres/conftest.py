"""Tests against the real PostgreSQL (127.0.0.1:5432, database ``test``): each test in its own schema."""

from tests.pg import pg_url  # noqa: F401  (the fixture)
