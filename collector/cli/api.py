"""CLI commands: api (to be filled by its owner)."""

from __future__ import annotations
