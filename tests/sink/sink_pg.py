"""PostgreSQL helpers for the sink tests (a module of its own: ``from conftest import`` would find whichever
test folder's conftest was imported first)."""

from __future__ import annotations

from urllib.parse import quote

from psycopg.conninfo import make_conninfo


def schema_dsn(server_dsn: str, schema_name: str) -> str:
    """``server_dsn`` with ``search_path`` set; a postgresql:// URL stays one (configs need URLs)."""
    if server_dsn.startswith(("postgresql://", "postgres://")):
        sep = "&" if "?" in server_dsn else "?"
        return f"{server_dsn}{sep}options={quote(f'-c search_path={schema_name}')}"
    return make_conninfo(server_dsn, options=f"-c search_path={schema_name}")
