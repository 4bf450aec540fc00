"""Implementation of the public ``otel_metrics`` API. Nothing here is public; import from ``otel_metrics``."""
