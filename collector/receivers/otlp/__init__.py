"""The ``otlp`` receiver: OTLP over gRPC (4317) and HTTP (4318), protobuf and JSON. Options: README.md."""

from __future__ import annotations

from collections.abc import Mapping

from collector.component import ReceiverFactory
from collector.receivers.otlp.config import OTLPReceiverConfig
from collector.receivers.otlp.receiver import OTLPReceiver
from processors.pipeline import Consumer, CreateSettings, Signal

__all__ = ["OTLPReceiver", "OTLPReceiverConfig", "factories"]

TYPE = "otlp"


def _create(settings: CreateSettings, config: OTLPReceiverConfig, consumers: Mapping[Signal, Consumer]) -> OTLPReceiver:
    return OTLPReceiver(settings, config, consumers)


factories = (ReceiverFactory(type=TYPE, config_type=OTLPReceiverConfig, create=_create),)
