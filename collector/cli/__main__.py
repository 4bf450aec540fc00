"""``python -m collector.cli …`` is the ``otel-metrics`` command (for venvs whose scripts are not on PATH)."""

from collector.cli import main

main()
