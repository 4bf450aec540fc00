"""Runs the real collector service from a config file in this process and prints its bound OTLP gRPC port as
one JSON line on stdout (tests bind port 0), then runs until SIGTERM/SIGINT - or ``kill -9``.

Usage: python collector_proc.py CONFIG.yaml
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import sys
from typing import Any


def _load(path: str) -> Any:
    from collector.config import ConfigError, load_config

    try:
        return load_config(path)
    except (AttributeError, ImportError, ConfigError):
        # The full registry may be mid-construction (parallel work); the pipeline needs only these three.
        import importlib

        from collector.components import Registry

        def factories(*modules: str) -> dict[str, Any]:
            return {f.type: f for m in modules for f in importlib.import_module(m).factories}

        registry = Registry(
            receivers=factories("collector.receivers.otlp"),
            processors={},
            exporters=factories("collector.exporters.postgres"),
            connectors={},
            extensions=factories("collector.extensions.file_storage"),
        )
        return load_config(path, registry, include_builtin=False)


async def _main(path: str) -> None:
    from collector.service import Service

    service = Service(_load(path))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await service.start()
    receiver = service.node("receiver", "otlp")
    print(json.dumps({"grpc_port": receiver.grpc_port}), flush=True)
    await stop.wait()
    await service.shutdown(10.0)


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    asyncio.run(_main(sys.argv[1]))
