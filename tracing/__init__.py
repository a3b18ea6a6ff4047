"""The co-location index, the contact rule and exposure tracing (see DESIGN.md)."""

from tracing.checkins import AppendResult
from tracing.errors import InvalidCheckin, InvalidQuery, StorageError, TracingError
from tracing.index import CheckinIndex
from tracing.model import Contact, ContactRule, Evidence, TraceResult, Zone

__all__ = [
    "AppendResult", "CheckinIndex", "Contact", "ContactRule", "Evidence", "InvalidCheckin",
    "InvalidQuery", "StorageError", "TraceResult", "TracingError", "Zone",
]
