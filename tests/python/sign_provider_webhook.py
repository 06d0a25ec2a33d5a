"""Signs a webhook the way a Standard Webhooks sender does, with the reference library (an
implementation Herald does not share code with). Reads {"secret", "id", "timestamp", "body"}
as JSON on stdin; prints the three headers to send, as a JSON object."""

import json
import sys
from datetime import datetime, timezone

from standardwebhooks.webhooks import Webhook

request = json.load(sys.stdin)
timestamp = datetime.fromtimestamp(request["timestamp"], tz=timezone.utc)
signature = Webhook(request["secret"]).sign(request["id"], timestamp, request["body"])
print(
    json.dumps(
        {
            "webhook-id": request["id"],
            "webhook-timestamp": str(request["timestamp"]),
            "webhook-signature": signature,
        }
    )
)
