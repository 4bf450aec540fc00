"""CLI commands: db (to be filled by its owner)."""

from __future__ import annotations
