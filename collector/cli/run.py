"""CLI commands: run (to be filled by its owner)."""

from __future__ import annotations
