"""CLI commands: reports (to be filled by its owner)."""

from __future__ import annotations
