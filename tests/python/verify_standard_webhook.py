"""Verifies a delivery with the Standard Webhooks reference library (an implementation Herald
does not share code with). Reads {"secret", "headers", "body"} as JSON on stdin; exits 0 when
the signature verifies, 1 otherwise."""

import json
import sys

from standardwebhooks.webhooks import Webhook

request = json.load(sys.stdin)
try:
    Webhook(request["secret"]).verify(request["body"].encode(), request["headers"])
except Exception as error:  # the library raises its own verification errors
    print(f"verification failed: {error}", file=sys.stderr)
    sys.exit(1)
print("verified")
