"""The debug exporter: writes what passes through to stderr via logging, sampled per second."""

from __future__ import annotations

import logging
import sys
import time

from collector.component import CreateSettings, Exporter, Request, Signal

from .config import DebugConfig
from .render import detailed, normal_lines, summary

__all__ = ["DebugExporter"]

LOGGER_NAME = "otel_metrics.collector.debug"


def _logger() -> logging.Logger:
    logger = logging.getLogger(LOGGER_NAME)
    logger.setLevel(logging.INFO)
    if not logger.handlers and not logging.getLogger().handlers:
        # Nobody configured logging: the debug exporter's whole point is to be seen on stderr.
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s\tinfo\t%(message)s"))
        logger.addHandler(handler)
    return logger


class DebugExporter(Exporter):
    def __init__(self, settings: CreateSettings, config: DebugConfig) -> None:
        self.settings = settings
        self.config = config
        self.logger = _logger()
        self._window = 0
        self._count = 0

    def _sampled(self) -> bool:
        now = int(time.monotonic())
        if now != self._window:
            self._window, self._count = now, 0
        self._count += 1
        initial, thereafter = self.config.sampling_initial, self.config.sampling_thereafter
        return self._count <= initial or (self._count - initial) % thereafter == 0

    async def consume(self, signal: Signal, request: Request) -> None:
        if not self._sampled():
            return
        try:
            self.logger.info("%s", summary(signal, request, str(self.settings.id)))
            if self.config.verbosity == "normal":
                for line in normal_lines(signal, request):
                    self.logger.info("%s", line)
            elif self.config.verbosity == "detailed":
                self.logger.info("%s", detailed(signal, request))
        except Exception:  # a rendering bug must never fail the pipeline
            self.logger.exception("debug exporter %s: cannot render %s", self.settings.id, signal.value)
