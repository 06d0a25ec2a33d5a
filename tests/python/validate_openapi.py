"""Validates an OpenAPI document with openapi-spec-validator (an implementation that shares no
code with Herald). Reads the document as JSON on stdin; exits non-zero with the reason when it
is not a valid OpenAPI 3.1 document."""

import json
import sys

from openapi_spec_validator import validate

validate(json.load(sys.stdin))
print("valid")
