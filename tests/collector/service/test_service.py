"""The service: graph wiring, fan-out/fan-in, connectors, start/stop order, start failures."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from collector.components import Registry
from collector.config.loader import parse_config
from collector.receivers.otlp.receiver import OTLPReceiver
from collector.service import ExportersFanOut, PipelinesFanOut, Service, StartError
from processors.pipeline import DataError, RefusedError, Request, Signal
from tests.collector.conftest import MakeConfig, RunCollector
from tests.support.nodes import node_of

PROTO = {"Content-Type": "application/x-protobuf"}


def _request(n: int = 2) -> ExportTraceServiceRequest:
    req = ExportTraceServiceRequest()
    ss = req.resource_spans.add().scope_spans.add()
    for i in range(n):
        span = ss.spans.add()
        span.name = f"op-{i}"
        span.trace_id = b"\x01" * 16
        span.span_id = bytes([i + 1] * 8)
    return req


def _post(collector: Any, request: ExportTraceServiceRequest) -> httpx.Response:
    return httpx.post(f"{collector.http_url}/v1/traces", content=request.SerializeToString(), headers=PROTO)


def _tags(request: Request) -> set[str]:
    return {
        kv.value.string_value
        for rs in request.resource_spans
        for ss in rs.scope_spans
        for span in ss.spans
        for kv in span.attributes
        if kv.key == "tagged.by"
    }


def test_pipelines_get_own_copies_exporters_share_one_message(
    run_collector: RunCollector, make_config: MakeConfig
) -> None:
    config = make_config(
        exporters={"collect/a": None, "collect/a2": None, "collect/b": None},
        processors={"tag/a": {"value": "a"}},
        pipelines={
            "traces/a": {
                "receivers": ["otlp"],
                "processors": ["tag/a"],
                "exporters": ["collect/a", "collect/a2"],
            },
            "traces/b": {"receivers": ["otlp"], "exporters": ["collect/b"]},
        },
    )
    collector = run_collector(config)
    assert _post(collector, _request(2)).status_code == 200
    (a,) = collector.exporter("collect/a").wait_items(2)
    (a2,) = collector.exporter("collect/a2").wait_items(2)
    (b,) = collector.exporter("collect/b").wait_items(2)
    assert a is a2  # one read-only message shared by a pipeline's exporters
    assert _tags(a) == {"a"}
    assert _tags(b) == set()  # traces/b never sees traces/a's in-place change
    assert a is not b


def test_connector_feeds_another_pipeline_and_order_of_start_and_stop(
    run_collector: RunCollector, make_config: MakeConfig, lifecycle: list[tuple[str, str]]
) -> None:
    config = make_config(
        exporters={"collect": None, "collect/metrics": None},
        processors={"tag": None},
        connectors={"spancount": None},
        pipelines={
            "traces": {"receivers": ["otlp"], "processors": ["tag"], "exporters": ["collect", "spancount"]},
            "metrics": {"receivers": ["spancount"], "exporters": ["collect/metrics"]},
        },
    )
    collector = run_collector(config)
    assert _post(collector, _request(3)).status_code == 200
    (metrics,) = collector.exporter("collect/metrics", Signal.METRICS).wait_items(1)
    metric = metrics.resource_metrics[0].scope_metrics[0].metrics[0]
    assert (metric.name, metric.gauge.data_points[0].as_int) == ("test.spans", 3)
    collector.stop()

    starts = [name for action, name in lifecycle if action == "start"]
    stops = [name for action, name in lifecycle if action == "shutdown"]
    assert starts[-2:] == ["connector/spancount", "processor/tag"]
    assert set(starts[:2]) == {"exporter/collect", "exporter/collect/metrics"}
    assert stops == list(reversed(starts))


def test_start_failure_names_component_and_stops_what_started(
    make_config: MakeConfig, test_components: Registry, lifecycle: list[tuple[str, str]]
) -> None:
    config = make_config(
        exporters={"collect": None, "collect/bad": {"mode": "fail_start"}},
        pipelines={"traces": {"receivers": ["otlp"], "exporters": ["collect", "collect/bad"]}},
    )
    service = Service(parse_config(config, test_components, include_builtin=False))
    with pytest.raises(StartError, match=r"cannot start exporter 'collect/bad' in pipeline traces: peer unreachable"):
        asyncio.run(service.start())
    assert lifecycle == [
        ("start", "exporter/collect"),
        ("start", "exporter/collect/bad"),
        ("shutdown", "exporter/collect/bad"),
        ("shutdown", "exporter/collect"),
    ]
    assert service.state == "stopped"


def test_port_in_use_is_a_start_failure(run_collector: RunCollector, make_config: MakeConfig) -> None:
    first = run_collector(make_config())
    taken = first.receiver.http_port
    config = make_config(receiver={"protocols": {"http": {"endpoint": f"127.0.0.1:{taken}"}}})
    with pytest.raises(StartError, match=rf"receiver 'otlp'.*127.0.0.1:{taken}"):
        run_collector(config)


class _Sink:
    def __init__(self, error: Exception | None = None) -> None:
        self.error = error
        self.got: list[Request] = []

    async def consume(self, signal: Signal, request: Request) -> None:
        self.got.append(request)
        if self.error is not None:
            raise self.error


def test_fan_out_error_combination() -> None:
    ok, refused, bad = _Sink(), _Sink(RefusedError("full", retry_after=4)), _Sink(DataError("bad"))
    request = _request(1)
    with pytest.raises(RefusedError, match="full") as info:
        asyncio.run(ExportersFanOut([ok, refused, bad]).consume(Signal.TRACES, request))
    assert info.value.retry_after == 4
    assert ok.got == [request] and ok.got[0] is refused.got[0] is bad.got[0]
    with pytest.raises(DataError):
        asyncio.run(ExportersFanOut([_Sink(), _Sink(DataError("bad"))]).consume(Signal.TRACES, request))

    first, second = _Sink(), _Sink()
    asyncio.run(PipelinesFanOut([first, second]).consume(Signal.TRACES, request))
    assert first.got[0] == second.got[0] == request
    assert first.got[0] is not second.got[0]


def test_shutdown_drains_in_flight_request_before_stopping_exporters(
    run_collector: RunCollector, make_config: MakeConfig, lifecycle: list[tuple[str, str]]
) -> None:
    collector = run_collector(make_config(exporters={"collect": {"mode": "block"}}))
    exporter = collector.exporter()
    result: list[httpx.Response] = []
    sender = threading.Thread(target=lambda: result.append(_post(collector, _request(2))))
    sender.start()
    assert exporter.entered.wait(15), "request never reached the exporter"
    stopping = asyncio.run_coroutine_threadsafe(collector.service.shutdown(10.0), collector.loop)
    assert exporter.gate is not None
    collector.loop.call_soon_threadsafe(exporter.gate.set)
    assert stopping.result(30) is True
    sender.join(30)
    assert [r.status_code for r in result] == [200]  # acknowledged, not cut off
    assert lifecycle.index(("consumed", "exporter/collect")) < lifecycle.index(("shutdown", "exporter/collect"))
    with pytest.raises(httpx.TransportError):
        _post(collector, _request(1))  # no longer accepting


def test_self_telemetry_counts_accepted_spans(run_collector: RunCollector, make_config: MakeConfig) -> None:
    config = make_config(
        receiver={"protocols": {"http": {"endpoint": "127.0.0.1:0"}}},
        pipelines={"traces": {"receivers": ["otlp/selftel"], "exporters": ["collect"]}},
    )
    config["receivers"] = {"otlp/selftel": config["receivers"]["otlp"]}
    config["service"]["telemetry"] = {"metrics": {"address": "127.0.0.1:0"}}
    collector = run_collector(config)
    receiver = node_of(collector.service, "receiver", "otlp/selftel", OTLPReceiver)
    response = httpx.post(
        f"http://127.0.0.1:{receiver.http_port}/v1/traces", content=_request(3).SerializeToString(), headers=PROTO
    )
    assert response.status_code == 200
    port = collector.service.telemetry_port
    assert port
    text = httpx.get(f"http://127.0.0.1:{port}/metrics").text
    lines = [
        line
        for line in text.splitlines()
        if line.startswith("otelcol_receiver_accepted_spans") and 'receiver="otlp/selftel"' in line
    ]
    assert len(lines) == 1 and 'transport="http"' in lines[0], text
    assert float(lines[0].rsplit(" ", 1)[1]) == 3


def test_two_receivers_fan_into_one_pipeline(run_collector: RunCollector, make_config: MakeConfig) -> None:
    endpoints = {"protocols": {"http": {"endpoint": "127.0.0.1:0"}}}
    config = make_config(pipelines={"traces": {"receivers": ["otlp/a", "otlp/b"], "exporters": ["collect"]}})
    config["receivers"] = {"otlp/a": endpoints, "otlp/b": endpoints}
    collector = run_collector(config)
    for name in ("otlp/a", "otlp/b"):
        port = node_of(collector.service, "receiver", name, OTLPReceiver).http_port
        response = httpx.post(
            f"http://127.0.0.1:{port}/v1/traces", content=_request(1).SerializeToString(), headers=PROTO
        )
        assert response.status_code == 200
    assert len(collector.exporter().wait_items(2)) == 2


def test_receiver_acknowledges_only_after_the_pipeline_accepted(
    run_collector: RunCollector, make_config: MakeConfig
) -> None:
    collector = run_collector(make_config(exporters={"collect": {"mode": "block"}}))
    exporter = collector.exporter()
    # While the exporter has not accepted, no answer comes back (an early ack would arrive within the timeout).
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(
            f"{collector.http_url}/v1/traces", content=_request(1).SerializeToString(), headers=PROTO, timeout=0.5
        )
    assert exporter.entered.is_set() and exporter.requests == []
    assert exporter.gate is not None
    collector.loop.call_soon_threadsafe(exporter.gate.set)
    assert _post(collector, _request(1)).status_code == 200
    assert len(exporter.wait_items(2)) == 2
