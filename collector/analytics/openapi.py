"""The API's OpenAPI 3.1 document, generated from the route specs and the typed result models so it cannot drift
from either."""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from . import models
from .routing import Param, RouteSpec

__all__ = ["openapi_document", "schema_of"]


def _json_type(tp: Any) -> dict[str, Any]:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        inner = _json_type(args[0])
        if len(args) < len(typing.get_args(tp)):
            return {**inner, "type": [inner["type"], "null"]} if "type" in inner else inner
        return inner
    if tp is bool:
        return {"type": "boolean"}
    if tp is int:
        return {"type": "integer"}
    if tp is float:
        return {"type": "number"}
    if tp is datetime:
        return {"type": "string", "format": "date-time"}
    return {"type": "string"}


def schema_of(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    props = {f.name: _json_type(hints[f.name]) for f in dataclasses.fields(cls)}
    return {"type": "object", "properties": props, "required": list(props)}


_ERROR = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
_BUDGET = {
    "type": "object",
    "properties": {
        "scope": {"type": "string", "enum": ["agent", "tenant", "model"]},
        "name": {"type": "string"},
        "period": {"type": "string", "enum": ["day", "week", "month"]},
        "amount_usd": {"type": "number"},
        "warning_ratio": {"type": "number", "default": 0.8},
        "critical_ratio": {"type": "number", "default": 1.0},
    },
    "required": ["scope", "name", "amount_usd"],
}


def _answer(spec: RouteSpec) -> dict[str, Any]:
    if spec.result is None:
        return {"type": "object"}
    ref = {"$ref": f"#/components/schemas/{spec.result}"}
    if not spec.many:
        return ref
    return {
        "type": "object",
        "properties": {
            "items": {"type": "array", "items": ref},
            "limit": {"type": "integer"},
            "offset": {"type": "integer"},
            "window": {"type": "object"},
        },
        "required": ["items"],
    }


def _parameter(p: Param) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": p.type, **({"enum": list(p.enum)} if p.enum else {})}
    return {
        "name": p.name,
        "in": p.where,
        "required": p.required or p.where == "path",
        "description": p.description,
        "schema": {"type": "array", "items": schema} if p.repeated else schema,
    }


def _operation(spec: RouteSpec, auth: bool) -> dict[str, Any]:
    op: dict[str, Any] = {
        "summary": spec.summary,
        "parameters": [_parameter(p) for p in spec.params],
        "responses": {
            "200": {"description": "OK", "content": {"application/json": {"schema": _answer(spec)}}},
            "400": {"description": "Bad argument", "content": _ERROR},
        },
    }
    if spec.body:
        op["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{spec.body}"}}},
        }
    if spec.mutating:
        op["responses"]["413"] = {"description": "Body too large"}
        op["responses"]["415"] = {"description": "Not Content-Type: application/json", "content": _ERROR}
    if auth and spec.auth:
        op["security"] = [{"bearer": []}]
        op["responses"]["401"] = {"description": "Missing or wrong bearer token"}
    return op


def openapi_document(
    routes: Sequence[RouteSpec],
    *,
    prefix: str,
    title: str,
    version: str,
    auth: bool,
    schemas: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    components: dict[str, Any] = {
        name: schema_of(getattr(models, name)) for name in models.__all__ if name != "to_jsonable"
    }
    components["Error"] = {
        "type": "object",
        "properties": {"error": {"type": "string"}, "suggestions": {"type": "array", "items": {"type": "string"}}},
        "required": ["error"],
    }
    components["Budget"] = _BUDGET
    components.update(schemas or {})
    paths: dict[str, Any] = {}
    for spec in routes:
        paths.setdefault(prefix + spec.path, {})[spec.method.lower()] = _operation(spec, auth)
    doc: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version},
        "paths": paths,
        "components": {"schemas": components},
    }
    if auth:
        doc["components"]["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
    return doc
