"""kill -9 of a process writing to a persistent sending queue: every acknowledged request is delivered after restart.

The child process runs a QueuedExporter on a file_storage queue with eight concurrent producers; its peer accepts
most requests (printing ``SENT i``) and hangs on every 50th (so some are in flight when it dies). It prints
``ACK i`` when consume() returned. The parent SIGKILLs it mid-stream, reopens the same directory and checks that every
acknowledged request is re-delivered (at-least-once; duplicates are only possible for the requests the child had
sent but not yet recorded as acknowledged).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from collector.component import ComponentID, CreateSettings, Signal
from collector.exporters.exporterhelper import QueueConfig, QueuedExporter, RetryConfig
from collector.exporters.exporterhelper.testing import StaticHost, span_names
from collector.extensions.file_storage import FileStorageConfig, FileStorageExtension

CHILD = r"""
import asyncio, sys
from collector.component import ComponentID, CreateSettings, Signal
from collector.exporters.exporterhelper import QueueConfig, QueuedExporter, RetryConfig
from collector.exporters.exporterhelper.testing import StaticHost, span_names, trace_request
from collector.extensions.file_storage import FileStorageConfig, FileStorageExtension

async def send(signal, request):
    i = int(span_names(request)[0][1:])
    if i % 50 == 1:
        await asyncio.Event().wait()  # the peer never answers these: in flight at the kill
    sys.stdout.write(f"SENT {i}\n")
    sys.stdout.flush()

async def main():
    ext = FileStorageExtension(CreateSettings(ComponentID("file_storage"), Signal.TRACES),
                               FileStorageConfig(directory=sys.argv[1]))
    host = StaticHost({ComponentID("file_storage"): ext})
    await ext.start(host)
    exp = QueuedExporter(CreateSettings(ComponentID("otlp"), Signal.TRACES),
                         queue=QueueConfig(storage="file_storage", num_consumers=4, queue_size=100000),
                         retry=RetryConfig(), timeout=0, send=send)
    await exp.start(host)
    counter = iter(range(10**9))

    async def producer():
        while True:
            i = next(counter)
            await exp.consume(Signal.TRACES, trace_request(f"s{i}", f"pad-{i}-" + "x" * 200))
            sys.stdout.write(f"ACK {i}\n")
            sys.stdout.flush()

    await asyncio.gather(*(producer() for _ in range(8)))

asyncio.run(main())
"""


def test_kill_9_loses_nothing_acknowledged(tmp_path: Path) -> None:
    store = tmp_path / "store"
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(store)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[4],
    )
    acked: set[str] = set()
    sent_before: set[str] = set()

    def record(line: str) -> None:
        word, i = line.split()
        (acked if word == "ACK" else sent_before).add(f"s{i}")

    assert child.stdout is not None
    try:
        for line in child.stdout:
            record(line)
            if len(acked) >= 400:
                break
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
    # Lines written before the kill but not yet read count too.
    for line in child.stdout:
        if line.strip():
            record(line)
    assert len(acked) >= 400

    delivered: Counter[str] = Counter()

    async def send(signal: Signal, request: Any) -> None:
        delivered[span_names(request)[0]] += 1

    async def recover() -> int:
        ext = FileStorageExtension(
            CreateSettings(ComponentID("file_storage"), Signal.TRACES), FileStorageConfig(directory=str(store))
        )
        host = StaticHost({ComponentID("file_storage"): ext})
        await ext.start(host)
        exp = QueuedExporter(
            CreateSettings(ComponentID("otlp"), Signal.TRACES),
            queue=QueueConfig(storage="file_storage", num_consumers=4, queue_size=100000),
            retry=RetryConfig(),
            timeout=0,
            send=send,
        )
        await exp.start(host)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        while not acked <= set(delivered) | sent_before and loop.time() < deadline:
            await asyncio.sleep(0.01)
        recovered = exp.recovered
        await exp.shutdown()
        await ext.shutdown()
        return recovered

    recovered = asyncio.run(recover())
    missing = acked - set(delivered) - sent_before
    assert not missing, f"{len(missing)} acknowledged requests lost, e.g. {sorted(missing)[:5]}"
    # The ones the peer never answered were in flight at the kill: they must come back.
    hung = {a for a in acked if int(a[1:]) % 50 == 1}
    assert hung and hung <= set(delivered)
    assert recovered >= len(hung)
    assert max(delivered.values()) == 1  # within the recovery run nothing is sent twice
    # Redelivery of something the dead process had already sent is allowed (at-least-once) but must be rare:
    # only requests whose acknowledgement had not reached the ack file yet.
    redelivered = set(delivered) & sent_before
    assert len(redelivered) <= 50, len(redelivered)
