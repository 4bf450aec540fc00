"""The sink tests' helper modules (``sink_otlp``, ``collector_proc``) on sys.path; PostgreSQL and temp-dir fixtures
(``pg_server_dsn``, ``pg_dsn``, ``pg_conn``, ``sink_tmp_path``) come from tests/conftest.py."""

from __future__ import annotations

import sys
from pathlib import Path

# --import-mode=importlib puts no test folder on sys.path; the helper modules next to this file are imported by name.
sys.path.insert(0, str(Path(__file__).parent))
