"""``python -m collector --config otel-collector.yaml`` is ``otel-metrics collector --config …``."""

import sys

from collector.cli import app

if __name__ == "__main__":
    app(["collector", *sys.argv[1:]])
