"""file_storage's segment queue: durable appends, acknowledgement, torn tails, group commit."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from collector.component import ComponentID, CreateSettings, Signal
from collector.confmap.sections import decode_section
from collector.exporters.exporterhelper.testing import StaticHost
from collector.extensions.file_storage import (
    FileStorageConfig,
    FileStorageExtension,
    QueueStoreError,
    SegmentQueue,
    factories,
)
from collector.extensions.file_storage.ack_file import SLOT_BYTES, _parse_slot
from processors.pipeline import Duration


def _open(path: Path, **kw: object) -> tuple[SegmentQueue, list[bytes]]:
    q = SegmentQueue(path, **kw)  # type: ignore[arg-type]
    return q, [q.read(r) for r in q.open()]


def test_appended_records_survive_reopen_until_acked(tmp_path: Path) -> None:
    async def run() -> list[int]:
        q, recovered = _open(tmp_path)
        assert recovered == []
        recs = [await q.append(f"r{i}".encode()) for i in range(5)]
        q.ack(recs[0].seq)
        q.ack(recs[2].seq)  # out of order: remembered above the low-water mark
        await q.close()
        return [r.seq for r in recs]

    asyncio.run(run())
    q, recovered = _open(tmp_path)
    assert recovered == [b"r1", b"r3", b"r4"]
    asyncio.run(q.close())


def test_fully_acked_segments_are_deleted(tmp_path: Path) -> None:
    async def run() -> None:
        q, _ = _open(tmp_path, segment_bytes=64)
        recs = [await q.append(b"x" * 40) for _ in range(6)]
        assert len(list(tmp_path.glob("*.seg"))) >= 3
        for r in recs:
            q.ack(r.seq)
        # Only the segment being appended to may remain.
        assert len(list(tmp_path.glob("*.seg"))) == 1
        assert q.unacked == 0
        await q.close()

    asyncio.run(run())
    q, recovered = _open(tmp_path)
    assert recovered == []
    assert list(tmp_path.glob("*.seg")) == []
    asyncio.run(q.close())


def test_torn_tail_record_is_truncated_and_earlier_records_kept(tmp_path: Path) -> None:
    async def run() -> None:
        q, _ = _open(tmp_path)
        for i in range(3):
            await q.append(f"rec-{i}".encode() * 10)
        await q.close()

    asyncio.run(run())
    (seg,) = tmp_path.glob("*.seg")
    size = seg.stat().st_size
    with seg.open("r+b") as f:  # cut the last record in half, as a crash mid-write would
        f.truncate(size - 20)
    q, recovered = _open(tmp_path)
    assert recovered == [b"rec-0" * 10, b"rec-1" * 10]
    assert q.torn_bytes_truncated > 0
    assert seg.stat().st_size < size - 20
    asyncio.run(q.close())


def test_corrupted_record_fails_crc_and_stops_the_scan(tmp_path: Path) -> None:
    async def run() -> None:
        q, _ = _open(tmp_path)
        for i in range(3):
            await q.append(f"rec-{i}".encode())
        await q.close()

    asyncio.run(run())
    (seg,) = tmp_path.glob("*.seg")
    data = bytearray(seg.read_bytes())
    data[-2] ^= 0xFF  # flip a payload byte of the last record
    seg.write_bytes(bytes(data))
    q, recovered = _open(tmp_path)
    assert recovered == [b"rec-0", b"rec-1"]
    asyncio.run(q.close())


def test_garbage_ack_file_redelivers_everything(tmp_path: Path) -> None:
    async def run() -> None:
        q, _ = _open(tmp_path)
        first = await q.append(b"r0")
        await q.append(b"r1")
        await q.append(b"r2")
        q.ack(first.seq)  # acknowledged, but the ack file is about to be destroyed
        await q.close()

    asyncio.run(run())
    (tmp_path / "ack").write_bytes(b"garbage")
    q, recovered = _open(tmp_path)
    assert recovered == [b"r0", b"r1", b"r2"]
    asyncio.run(q.close())


def test_concurrent_appends_share_fsyncs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    syncs = 0
    real = os.fdatasync

    def counting(fd: int) -> None:
        nonlocal syncs
        syncs += 1
        real(fd)

    monkeypatch.setattr(os, "fdatasync", counting)

    async def run() -> None:
        q, _ = _open(tmp_path)
        recs = await asyncio.gather(*(q.append(f"r{i}".encode()) for i in range(200)))
        assert sorted(r.seq for r in recs) == list(range(1, 201))
        await q.close()

    asyncio.run(run())
    assert 1 <= syncs < 200  # group commit: far fewer fsyncs than appends
    q, recovered = _open(tmp_path)
    assert sorted(recovered) == sorted(f"r{i}".encode() for i in range(200))
    asyncio.run(q.close())


def test_second_opener_of_a_queue_directory_is_refused(tmp_path: Path) -> None:
    q, _ = _open(tmp_path)
    with pytest.raises(QueueStoreError, match="in use"):
        SegmentQueue(tmp_path).open()
    asyncio.run(q.close())


def test_extension_gives_each_owner_its_own_directory(tmp_path: Path) -> None:
    (factory,) = factories
    assert factory.type == "file_storage"
    config = FileStorageConfig(directory=str(tmp_path / "store"), timeout=Duration(0.0))
    assert config.validate() == []
    ext = factory.create(CreateSettings(ComponentID("file_storage"), Signal.TRACES), config)
    assert isinstance(ext, FileStorageExtension)

    async def run() -> None:
        await ext.start(StaticHost())
        a = await ext.client(ComponentID("otlp", "tempo"), "traces")
        b = await ext.client(ComponentID("otlp"), "traces")
        assert a.directory != b.directory
        assert a.directory.parent == tmp_path / "store"
        with pytest.raises(QueueStoreError):
            await ext.client(ComponentID("otlp", "tempo"), "traces")
        await ext.shutdown()

    asyncio.run(run())


def test_config_validation_names_the_field() -> None:
    errors: list[str] = []
    decode_section(FileStorageConfig, {"directory": "", "segment_size_mib": 0}, "extensions.file_storage", errors)
    assert errors == [
        "extensions.file_storage.segment_size_mib: must be > 0, got 0",
        "extensions.file_storage: directory: must not be empty",
    ]


def test_failed_write_is_reported_and_later_records_stay_readable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = os.fdatasync
    fail = {"on": False}

    def flaky(fd: int) -> None:
        if fail["on"]:
            raise OSError(28, "No space left on device")
        real(fd)

    monkeypatch.setattr(os, "fdatasync", flaky)

    async def run() -> None:
        q, _ = _open(tmp_path)
        await q.append(b"before")
        fail["on"] = True
        with pytest.raises(QueueStoreError, match="No space left"):
            await q.append(b"lost")
        fail["on"] = False
        await q.append(b"after")
        await q.close()

    asyncio.run(run())
    q, recovered = _open(tmp_path)
    # The failed append was never acknowledged to its caller; the ones around it survive.
    assert recovered == [b"before", b"after"]
    asyncio.run(q.close())


def _mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def test_queue_directories_are_0700_files_0600_and_parents_keep_their_modes(tmp_path: Path) -> None:
    tmp_path.chmod(0o751)  # an existing parent: its mode is the user's
    old_umask = os.umask(0o022)  # the usual umask, which would leave 0755/0644
    try:
        (factory,) = factories
        config = FileStorageConfig(directory=str(tmp_path / "var" / "store"), timeout=Duration(0.0))
        ext = factory.create(CreateSettings(ComponentID("file_storage"), Signal.TRACES), config)
        assert isinstance(ext, FileStorageExtension)

        async def run() -> Path:
            await ext.start(StaticHost())
            queue = await ext.client(ComponentID("postgres"), "traces")
            for i in range(3):
                record = await queue.append(b"password=hunter2 %d" % i)
            queue.ack(record.seq)
            await ext.shutdown()
            return queue.directory

        directory = asyncio.run(run())
    finally:
        os.umask(old_umask)
    assert _mode(tmp_path) == 0o751
    assert _mode(tmp_path / "var") == _mode(tmp_path / "var" / "store") == _mode(directory) == 0o700
    files = [p for p in directory.iterdir()]
    assert {p.name for p in files} >= {"ack", "lock"} and any(p.suffix == ".seg" for p in files)
    assert {p.name: _mode(p) for p in files} == {p.name: 0o600 for p in files}


def test_an_existing_readable_queue_is_made_private_on_open(tmp_path: Path) -> None:
    store = tmp_path / "store"
    q, _ = _open(store / "exporter_postgres_traces")
    asyncio.run(q.append(b"secret"))
    asyncio.run(q.close())
    store.chmod(0o755)  # the storage root is the user's: left as it is
    for path in (store / "exporter_postgres_traces", *(store / "exporter_postgres_traces").iterdir()):
        path.chmod(0o755 if path.is_dir() else 0o644)  # as an older version left them
    q, recovered = _open(store / "exporter_postgres_traces")
    assert recovered == [b"secret"]
    asyncio.run(q.close())
    assert _mode(store) == 0o755
    assert _mode(store / "exporter_postgres_traces") == 0o700
    assert {_mode(p) for p in (store / "exporter_postgres_traces").iterdir()} == {0o600}


def test_a_torn_ack_write_falls_back_to_the_other_slot(tmp_path: Path) -> None:
    async def run() -> None:
        q, _ = _open(tmp_path)
        recs = [await q.append(b"r%d" % i) for i in range(4)]
        q.ack(recs[0].seq)
        q.ack(recs[1].seq)
        await q.close()

    asyncio.run(run())
    ack = tmp_path / "ack"
    assert ack.stat().st_size == 2 * SLOT_BYTES  # reserved up front: written in place on a full disk
    data = bytearray(ack.read_bytes())
    slots = [_parse_slot(bytes(data[i * SLOT_BYTES : (i + 1) * SLOT_BYTES])) for i in range(2)]
    first, second = slots
    assert first is not None and second is not None
    newest = 0 if first[0] > second[0] else 1
    data[newest * SLOT_BYTES + 20] ^= 0xFF  # a crash mid-write: its crc no longer checks out
    ack.write_bytes(bytes(data))
    older_lwm = (second if newest == 0 else first)[1][0]
    q, recovered = _open(tmp_path)
    assert recovered == [b"r%d" % (seq - 1) for seq in range(older_lwm, 5)]  # the older state: never loss
    asyncio.run(q.close())


def test_the_previous_ack_format_is_read(tmp_path: Path) -> None:
    import struct
    import zlib

    async def run() -> None:
        q, _ = _open(tmp_path)
        for i in range(3):
            await q.append(b"r%d" % i)
        await q.close()

    asyncio.run(run())
    body = struct.pack("<QI", 2, 1) + struct.pack("<Q", 3)  # low-water mark 2 (seq 1 done), seq 3 done
    (tmp_path / "ack").write_bytes(b"OMACK1\n" + body + struct.pack("<I", zlib.crc32(body)))
    q, recovered = _open(tmp_path)
    assert recovered == [b"r1"]
    asyncio.run(q.close())
    q, recovered = _open(tmp_path)  # rewritten in the new format, same state
    assert recovered == [b"r1"]
    asyncio.run(q.close())
