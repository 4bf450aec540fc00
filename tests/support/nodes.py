"""A running service's components as their own types: ``Service.node`` returns the contract's ``Component``,
and tests read what a kind adds (a receiver's bound ports, the prometheus exporter's store)."""

from __future__ import annotations

from typing import TypeVar

from collector.component import Component, Signal
from collector.service.graph import NodeKind
from collector.service.service import Service

C = TypeVar("C", bound=Component)


def node_of(service: Service, kind: NodeKind, id: str, cls: type[C], signal: Signal | None = None) -> C:
    """The running ``kind``/``id`` component, checked to be a ``cls``."""
    node = service.node(kind, id, signal)
    assert isinstance(node, cls), f"{kind} {id} is a {type(node).__name__}, not a {cls.__name__}"
    return node
