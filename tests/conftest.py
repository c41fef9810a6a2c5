"""Test-wide environment: no real AWS credentials or endpoints, ever."""

from __future__ import annotations

import os

# Set before any test module imports the function package, whose Logger and Metrics read
# these at import time.
os.environ.update(
    {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
        "POWERTOOLS_SERVICE_NAME": "fulfillment",
        "POWERTOOLS_METRICS_NAMESPACE": "Fulfillment",
        "POWERTOOLS_LOG_LEVEL": "DEBUG",
    }
)
for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL"):
    os.environ.pop(name, None)
