"""The scrape endpoint's HTTP behaviour: keep-alive, gzip, HEAD, 404/405/413, TLS."""

from __future__ import annotations

import asyncio
import gzip
import shutil
import ssl
import subprocess
from pathlib import Path

import httpx
import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from collector.component import ComponentID, CreateSettings, Signal
from collector.exporters.exporterhelper.testing import StaticHost
from collector.exporters.prometheus import PrometheusExporterConfig
from collector.exporters.prometheus.config import TLSServerConfig
from collector.exporters.prometheus.exporter import PrometheusExporter
from tests.support.prom_helpers import collect


def _request(n_series: int) -> object:
    reader = InMemoryMetricReader()
    counter = MeterProvider(metric_readers=[reader]).get_meter("m").create_counter("hits")
    for i in range(n_series):
        counter.add(1, {"route": f"/route/{i}"})
    return collect(reader)


def _exporter(**config: object) -> PrometheusExporter:
    return PrometheusExporter(
        CreateSettings(ComponentID("prometheus"), Signal.METRICS),
        PrometheusExporterConfig(endpoint="127.0.0.1:0", **config),  # type: ignore[arg-type]
    )


def test_keep_alive_gzip_head_and_errors() -> None:
    async def run() -> None:
        exporter = _exporter()
        await exporter.start(StaticHost())
        try:
            await exporter.consume(Signal.METRICS, _request(200))  # type: ignore[arg-type]
            base = f"http://127.0.0.1:{exporter.port}"
            async with httpx.AsyncClient() as client:
                first = await client.get(f"{base}/metrics", headers={"Accept-Encoding": "gzip"})
                assert first.headers["content-encoding"] == "gzip"
                assert first.text.count("hits_total{") == 200
                raw = await client.get(f"{base}/metrics", headers={"Accept-Encoding": "identity"})
                assert "content-encoding" not in raw.headers
                assert gzip.decompress(gzip.compress(raw.content)) == first.content
                head = await client.head(f"{base}/metrics", headers={"Accept-Encoding": "identity"})
                assert head.status_code == 200 and head.content == b""
                assert int(head.headers["content-length"]) == len(raw.content)
                assert (await client.post(f"{base}/metrics")).status_code == 405
                assert (await client.post(f"{base}/metrics", content=b"x")).status_code == 413  # takes no body
                assert (await client.get(f"{base}/other")).status_code == 404
                assert (await client.get(f"{base}/metrics?x=1")).status_code == 200
            # two requests on one raw connection: the server keeps it open between them
            reader, writer = await asyncio.open_connection("127.0.0.1", exporter.port)
            writer.write(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n" * 2)
            for _ in range(2):
                head_bytes = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
                assert head_bytes.startswith(b"HTTP/1.1 200")
                length = int(head_bytes.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
                assert (await reader.readexactly(length)).count(b"hits_total{") == 200
            writer.close()
        finally:
            await exporter.shutdown()

    asyncio.run(run())


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl CLI not installed")
def test_tls(tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
         "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip

    async def run() -> None:
        exporter = _exporter(tls=TLSServerConfig(cert_file=str(cert), key_file=str(key)))
        await exporter.start(StaticHost())
        try:
            await exporter.consume(Signal.METRICS, _request(1))  # type: ignore[arg-type]
            ctx = ssl.create_default_context(cafile=str(cert))
            async with httpx.AsyncClient(verify=ctx) as client:
                resp = await client.get(f"https://127.0.0.1:{exporter.port}/metrics")
            assert resp.status_code == 200 and "hits_total{" in resp.text
            async with httpx.AsyncClient() as client:
                with pytest.raises(httpx.HTTPError):
                    await client.get(f"http://127.0.0.1:{exporter.port}/metrics", timeout=3)
        finally:
            await exporter.shutdown()

    asyncio.run(run())
