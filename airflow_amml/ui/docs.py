"""/docs: the API documentation as a plain page made from the app's OpenAPI schema. Airflow ships no
Swagger UI files (its own /docs loads them from a CDN), and these pages load nothing from the internet."""

from __future__ import annotations

import json
from typing import Any

HTTP_METHODS = ("get", "put", "post", "delete", "patch")


def operations(schema: dict[str, Any]) -> list[dict[str, Any]]:
    """The schema's operations, in path order, as the docs template shows them."""
    found = []
    for path, item in schema.get("paths", {}).items():
        for method in HTTP_METHODS:
            op = item.get(method)
            if op is None:
                continue
            found.append(
                {
                    "method": method.upper(),
                    "path": path,
                    "summary": op.get("summary", ""),
                    "description": op.get("description", ""),
                    "parameters": [
                        {
                            "name": p["name"],
                            "where": p.get("in", ""),
                            "type": _type(p.get("schema", {})),
                            "description": p.get("description", ""),
                        }
                        for p in op.get("parameters", [])
                    ],
                    "body": _body(schema, op),
                    "responses": [(code, r.get("description", "")) for code, r in op.get("responses", {}).items()],
                }
            )
    return found


def _type(schema: dict[str, Any]) -> str:
    if "anyOf" in schema:
        return " or ".join(_type(s) for s in schema["anyOf"])
    return str(schema.get("type", "")) or schema.get("$ref", "").rsplit("/", 1)[-1]


def _body(schema: dict[str, Any], op: dict[str, Any]) -> str:
    content = op.get("requestBody", {}).get("content", {}).get("application/json")
    if not content:
        return ""
    ref = content.get("schema", {}).get("$ref", "")
    model = schema.get("components", {}).get("schemas", {}).get(ref.rsplit("/", 1)[-1], content.get("schema", {}))
    required = set(model.get("required", []))
    fields = {
        name: f"{_type(field)}{'' if name in required else ' (optional)'}: {field.get('description', '')}"
        for name, field in model.get("properties", {}).items()
    }
    return json.dumps(fields, indent=2, ensure_ascii=False)
