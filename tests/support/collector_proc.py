"""Runs the real collector service from a config file in this process and prints its bound OTLP gRPC port as
one JSON line on stdout (tests bind port 0), then runs until SIGTERM/SIGINT - or ``kill -9``.

Usage: python collector_proc.py CONFIG.yaml

The config is loaded with the full built-in registry, as ``otel-metrics collector`` loads it: a config error or a
missing component ends the process with its message on stderr, which the tests that start it show.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import sys

from collector.config.loader import load_config
from collector.receivers.otlp.receiver import OTLPReceiver
from collector.service import Service


async def _main(path: str) -> None:
    service = Service(load_config(path))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await service.start()
    receiver = service.node("receiver", "otlp")
    assert isinstance(receiver, OTLPReceiver), f"receiver otlp is a {type(receiver).__name__}"
    print(json.dumps({"grpc_port": receiver.grpc_port}), flush=True)
    await stop.wait()
    await service.shutdown(10.0)


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    asyncio.run(_main(sys.argv[1]))
