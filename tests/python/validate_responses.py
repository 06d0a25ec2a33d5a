"""Checks real answers against the response schemas of an OpenAPI 3.1 document with
jsonschema (an implementation that shares no code with Herald). Reads
{"document": <the OpenAPI document>, "responses": [{"operation", "status", "body"}, ...]} as
JSON on stdin; prints every mismatch (operation, JSON path, message) and exits non-zero when
there is any.

OpenAPI 3.1 schemas are JSON Schema 2020-12. Each body is validated against a wrapper that
embeds the document's components, so `#/components/schemas/...` references resolve as they
do in the document."""

import json
import sys

from jsonschema import Draft202012Validator

# Without a date-time checker, `format` would be an annotation only and a malformed time
# would pass; jsonschema registers it only when rfc3339-validator is installed.
if "date-time" not in Draft202012Validator.FORMAT_CHECKER.checkers:
    sys.exit("jsonschema cannot check date-time: install rfc3339-validator")


def operations(document):
    for item in document["paths"].values():
        for operation in item.values():
            yield operation["operationId"], operation


def main():
    given = json.load(sys.stdin)
    document = given["document"]
    by_name = dict(operations(document))
    mismatches = []
    checked = 0
    for response in given["responses"]:
        name, status, body = response["operation"], response["status"], response["body"]
        answer = by_name.get(name, {}).get("responses", {}).get(str(status))
        if answer is None:
            mismatches.append(f"{name} {status}: $: the status is not documented")
            continue
        content = answer.get("content", {})
        if "application/json" not in content:
            # CSV and server-sent events are not JSON documents; their tests read them.
            if not content:
                mismatches.append(f"{name} {status}: $: a body where none is documented")
            continue
        schema = {
            **content["application/json"]["schema"],
            "components": document["components"],
        }
        validator = Draft202012Validator(
            schema, format_checker=Draft202012Validator.FORMAT_CHECKER
        )
        for error in sorted(validator.iter_errors(body), key=lambda e: e.json_path):
            mismatches.append(f"{name} {status}: {error.json_path}: {error.message}")
        checked += 1
    for mismatch in mismatches:
        print(mismatch)
    if mismatches:
        sys.exit(1)
    print(f"{checked} answers match their schemas")


main()
