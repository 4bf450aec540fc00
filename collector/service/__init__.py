"""The collector service: the pipeline graph, its lifecycle, and the Host the components see."""

from collector.service.fanout import ExportersFanOut, PipelinesFanOut
from collector.service.service import DEFAULT_SHUTDOWN_TIMEOUT, Service, StartError

__all__ = ["DEFAULT_SHUTDOWN_TIMEOUT", "ExportersFanOut", "PipelinesFanOut", "Service", "StartError"]
