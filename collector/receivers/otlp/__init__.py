"""The ``otlp`` receiver: OTLP over gRPC (4317) and HTTP (4318), protobuf and JSON. Options: README.md."""

from __future__ import annotations

from collector.component import ReceiverFactory
from collector.receivers.otlp.config import OTLPReceiverConfig
from collector.receivers.otlp.receiver import OTLPReceiver

__all__ = ["OTLPReceiver", "OTLPReceiverConfig", "factories"]

TYPE = "otlp"


factories = (ReceiverFactory(type=TYPE, config_type=OTLPReceiverConfig, create=OTLPReceiver),)
