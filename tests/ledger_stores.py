"""The two ledger stores every ledger test runs on: SQLite (a file under tmp_path) and a real
PostgreSQL server (a fresh database per test on the server named by ROLLBOOK_TEST_POSTGRES_URL,
which ./scripts/postgres starts and ./scripts/test exports).

Without that variable the PostgreSQL cases are skipped with instructions, except under
ROLLBOOK_REQUIRE_POSTGRES=1 (set by ./scripts/test), where they fail: the test command must
never pass without having tested the production store.
"""

from __future__ import annotations

import os
import uuid
from urllib.parse import urlsplit, urlunsplit

import pytest

STORES = ["sqlite", "postgresql"]
HOW = ("the PostgreSQL ledger tests need a server: run `eval \"$(./scripts/postgres start)\"` "
       "(it sets ROLLBOOK_TEST_POSTGRES_URL), or run ./scripts/test, which does it for you")


def postgres_server_url() -> str:
    url = os.environ.get("ROLLBOOK_TEST_POSTGRES_URL")
    if not url:
        if os.environ.get("ROLLBOOK_REQUIRE_POSTGRES") == "1":
            pytest.fail("ROLLBOOK_TEST_POSTGRES_URL is not set: " + HOW, pytrace=False)
        pytest.skip("ROLLBOOK_TEST_POSTGRES_URL is not set: " + HOW)
    return url


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + name))


@pytest.fixture(params=STORES)
def ledger_url(request, tmp_path):
    """A URL of an empty ledger on each store."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'ledger.db'}"
        return
    import psycopg

    server = postgres_server_url()
    name = "rb_" + uuid.uuid4().hex[:16]
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield _with_database(server, name)
    finally:
        with psycopg.connect(server, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
