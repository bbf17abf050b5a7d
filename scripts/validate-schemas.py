#!/usr/bin/env python3
"""Validates Funnel's JSON Schemas with an implementation independent of the Rust code.

Every file under schemas/ must be a valid draft 2020-12 schema (openapi.json: an OpenAPI 3.1
document whose component schemas are), and every golden event payload in
crates/codec/tests/golden/<type>.v<N>.json must validate against schemas/events/<type>.v<N>.json.
Exits non-zero with one line per problem.
"""
import json
import pathlib
import sys

from jsonschema import Draft202012Validator

ROOT = pathlib.Path(__file__).resolve().parent.parent
SCHEMAS = ROOT / "schemas"
GOLDEN = ROOT / "crates" / "codec" / "tests" / "golden"


def main() -> int:
    problems = []
    schemas = {}
    for path in sorted(SCHEMAS.rglob("*.json")):
        rel = path.relative_to(SCHEMAS).as_posix()
        if rel == "openapi.json":
            # The HTTP API's OpenAPI 3.1 document: its component schemas are draft 2020-12.
            try:
                doc = json.loads(path.read_text(encoding="utf-8"))
                if not str(doc.get("openapi", "")).startswith("3.1"):
                    problems.append(f"{rel}: not an OpenAPI 3.1 document")
                for name, schema in doc.get("components", {}).get("schemas", {}).items():
                    Draft202012Validator.check_schema(schema)
            except Exception as e:  # noqa: BLE001 - report every kind of failure
                problems.append(f"{rel}: invalid: {e}")
            continue
        try:
            schema = json.loads(path.read_text(encoding="utf-8"))
            if schema.get("$schema") != "https://json-schema.org/draft/2020-12/schema":
                problems.append(f"{rel}: $schema is not draft 2020-12")
            Draft202012Validator.check_schema(schema)
            schemas[rel] = schema
        except Exception as e:  # noqa: BLE001 - report every kind of failure
            problems.append(f"{rel}: invalid schema: {e}")
    goldens = sorted(GOLDEN.glob("*.json"))
    for path in goldens:
        rel = f"events/{path.name}"
        schema = schemas.get(rel)
        if schema is None:
            # Golden files of older versions are validated against their own, kept schema.
            problems.append(f"{path.name}: no schema {rel}")
            continue
        instance = json.loads(path.read_text(encoding="utf-8"))
        for err in Draft202012Validator(schema).iter_errors(instance):
            where = "/".join(str(p) for p in err.absolute_path) or "(root)"
            problems.append(f"{path.name}: {where}: {err.message}")
    # A schema must also refuse what is wrong: an unknown field in a golden payload.
    for path in goldens[:5]:
        schema = schemas.get(f"events/{path.name}")
        instance = json.loads(path.read_text(encoding="utf-8"))
        if schema is not None and isinstance(instance, dict):
            instance["unexpected_field"] = 1
            if Draft202012Validator(schema).is_valid(instance):
                problems.append(f"{path.name}: schema accepts unknown fields")
    for p in problems:
        print(p, file=sys.stderr)
    print(f"validated {len(schemas)} schemas and {len(goldens)} golden payloads: {len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
