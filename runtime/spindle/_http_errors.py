"""What a failed request to the head's HTTP API said, in one place for every client of it.

The job client, the state SDK and the CLIs all show the server's JSON ``error`` (or the raw body) and, on 401,
how to fix it; keeping that here means the hint is the same everywhere.
"""

from __future__ import annotations

from typing import Any


def error_message(response: Any) -> str:
    """The message of a failed ``requests.Response`` from the head, with the fix for a missing token."""
    try:
        message = response.json().get("error") or response.text
    except (ValueError, AttributeError):
        message = response.text
    if response.status_code == 401:
        message += " (set SPINDLE_TOKEN to the cluster's token)"
    return str(message)
