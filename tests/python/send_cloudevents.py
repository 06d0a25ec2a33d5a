"""Sends CloudEvents made by the CloudEvents Python SDK (an implementation that shares no code
with Herald) to Herald's API in structured, binary and batch mode.

Reads {"api", "key", "type"} as JSON on stdin; prints one JSON object per request sent:
{"mode", "id", "status", "body"}."""

import json
import sys
import urllib.error
import urllib.request

from cloudevents.conversion import to_binary, to_structured
from cloudevents.http import CloudEvent


def post(url, key, headers, body):
    request = urllib.request.Request(url, data=body, method="POST")
    request.add_header("authorization", f"Bearer {key}")
    for name, value in headers.items():
        request.add_header(name, value)
    try:
        with urllib.request.urlopen(request) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def event(event_type, event_id, data):
    return CloudEvent(
        {"type": event_type, "source": "/sdk-test", "id": event_id, "region": "eu"}, data
    )


def main():
    config = json.load(sys.stdin)
    api, key, event_type = config["api"], config["key"], config["type"]
    results = []

    headers, body = to_structured(event(event_type, "ce-structured", {"mode": "structured"}))
    status, answer = post(f"{api}/v1/events", key, headers, body)
    results.append({"mode": "structured", "id": "ce-structured", "status": status, "body": answer})

    headers, body = to_binary(event(event_type, "ce-binary", {"mode": "binary"}))
    headers.setdefault("content-type", "application/json")
    status, answer = post(f"{api}/v1/events", key, headers, body)
    results.append({"mode": "binary", "id": "ce-binary", "status": status, "body": answer})

    # The SDK writes single events; a batch is an array of its structured bodies.
    batch = [
        json.loads(to_structured(event(event_type, f"ce-batch-{n}", {"mode": "batch"}))[1])
        for n in range(2)
    ]
    status, answer = post(
        f"{api}/v1/events",
        key,
        {"content-type": "application/cloudevents-batch+json"},
        json.dumps(batch).encode(),
    )
    results.append({"mode": "batch", "id": "ce-batch", "status": status, "body": answer})

    for result in results:
        print(json.dumps(result))


main()
