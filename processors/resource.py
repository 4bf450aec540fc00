"""The ``resource`` processor: apply attribute actions to every resource of traces, metrics and logs.

Upstream contrib's ``resourceprocessor``: one key, ``attributes``, a list of actions with exactly the
``attributes`` processor's semantics (insert/update/upsert/delete/hash/extract/convert), applied to the
resource of every ``resource_spans``/``resource_metrics``/``resource_logs`` entry. Resources are few per
request, so this costs almost nothing per item.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from processors.attributes import ActionConfig, compile_actions, validate_actions
from processors.pdata import resource_entries
from processors.pipeline import Consumer, CreateSettings, ProcessorFactory, Request, Signal, SyncProcessor

__all__ = ["ResourceConfig", "ResourceProcessor", "factories"]

TYPE = "resource"


@dataclass
class ResourceConfig:
    attributes: list[ActionConfig] = field(default_factory=list)

    def validate(self) -> list[str]:
        errors = validate_actions("attributes", self.attributes)
        if not self.attributes:
            errors.append("attributes: at least one action must be configured")
        return errors


class ResourceProcessor(SyncProcessor):
    def __init__(self, settings: CreateSettings, config: ResourceConfig, next_consumer: Consumer) -> None:
        super().__init__(settings, next_consumer)
        self._actions = compile_actions(config.attributes)

    def process(self, signal: Signal, request: Request) -> bool:
        for entry in resource_entries(signal, request):
            for act in self._actions:
                act(entry.resource.attributes)
        return True


factories = (ProcessorFactory(type=TYPE, config_type=ResourceConfig, create=ResourceProcessor),)
