"""The ``file_storage`` extension: hands each component its own durable FIFO under one directory."""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path

from collector.component import ComponentID, CreateSettings, Extension, Host

from .config import FileStorageConfig
from .private import make_private_dir
from .segment_queue import QueueStoreError, SegmentQueue

__all__ = ["FileStorageExtension"]

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
_LOCK_RETRY_INTERVAL = 0.05


class FileStorageExtension(Extension):
    def __init__(self, settings: CreateSettings, config: FileStorageConfig) -> None:
        self.settings = settings
        self.config = config
        self.directory = Path(config.directory)
        self._clients: dict[str, SegmentQueue] = {}

    async def start(self, host: Host) -> None:
        if self.config.create_directory and not self.directory.exists():
            make_private_dir(self.directory)
        if not self.directory.is_dir():
            raise QueueStoreError(
                f"extensions::{self.settings.id}::directory: {self.directory} does not exist "
                "(create it or set create_directory: true)"
            )

    def client_directory(self, owner: ComponentID, name: str) -> Path:
        """Upstream names the file after kind, type, name and signal; one directory per queue here."""
        parts = ["exporter", owner.type, owner.name, name]
        return self.directory / _UNSAFE.sub("~", "_".join(p for p in parts if p))

    async def client(self, owner: ComponentID, name: str) -> SegmentQueue:
        """Open (and recover) the durable FIFO for ``owner``'s queue ``name``; the caller closes it."""
        path = self.client_directory(owner, name)
        key = str(path)
        if key in self._clients and not self._clients[key]._closed:
            raise QueueStoreError(f"file_storage client {owner}/{name} is already open")
        deadline = time.monotonic() + self.config.timeout
        while True:
            queue = SegmentQueue(
                path, fsync=self.config.fsync, segment_bytes=self.config.segment_size_mib * 1024 * 1024
            )
            try:
                await asyncio.to_thread(queue.open)
                break
            except QueueStoreError:
                # Another process (a collector still shutting down) may hold the lock for a moment.
                if time.monotonic() >= deadline:
                    raise
                await asyncio.sleep(_LOCK_RETRY_INTERVAL)
        self._clients[key] = queue
        return queue

    async def shutdown(self) -> None:
        for queue in self._clients.values():
            await queue.close()
        self._clients.clear()
