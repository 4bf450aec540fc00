"""The writer in a worker process (``write_processes > 0``): the request crosses as serialized OTLP bytes.

Turning spans into rows is Python work bound to one core by the GIL; worker processes (spawned, never forked: the
collector runs gRPC threads) let it use the other cores. Each worker holds one PostgresWriter (one connection).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from processors.pipeline import Signal

from .results import WriteResult
from .writer import PostgresWriter, WriterSettings

_writer: PostgresWriter | None = None


def init(dsn: str, settings: WriterSettings, log_level: int) -> None:
    global _writer
    logging.basicConfig(level=log_level, format="%(asctime)s %(levelname)s %(processName)s %(name)s: %(message)s")
    _writer = PostgresWriter(dsn, settings)


def ping() -> bool:
    return _writer is not None


def write(signal: str, payloads: Sequence[bytes]) -> WriteResult:
    """Write serialized requests of one signal in one transaction."""
    assert _writer is not None, "worker not initialised"
    return _writer.write_payloads(Signal(signal), payloads)
