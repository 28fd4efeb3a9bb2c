"""The canonical model: objects, the event envelope, the error tree and the ports for time and ids.

Pure: no I/O, no clock reads.
"""

from opsrail.model._catalog import (
    EVENT_TYPE_PREFIX,
    KINDS,
    SCHEMA_NAMES,
    SCHEMA_VERSION,
    event_type,
    json_schema,
    kind_of,
)
from opsrail.model._commercial import (
    Account,
    ChangeOrder,
    Credit,
    Entitlement,
    Invoice,
    LegalEntity,
    Order,
    OrderLine,
    Quote,
    Subscription,
    Vendor,
)
from opsrail.model._common import CanonicalObject, ExternalIds, Segment
from opsrail.model._envelope import CloudEvent
from opsrail.model._errors import (
    Conflict,
    FieldError,
    Forbidden,
    InvalidInput,
    MappingFailed,
    NotFound,
    OpsrailError,
    PayloadTooLarge,
    RateLimited,
    Unauthenticated,
    Unavailable,
    UnsupportedMediaType,
    json_path,
    require_one_of,
)
from opsrail.model._operations import Approval, Escalation, ImplementationTask, Incident
from opsrail.model._roles import ALREADY_PUBLISHED, ROLES, KnownRole
from opsrail.model._time import Clock, IdFactory, UtcMoment

__all__ = [
    "ALREADY_PUBLISHED",
    "EVENT_TYPE_PREFIX",
    "KINDS",
    "ROLES",
    "SCHEMA_NAMES",
    "SCHEMA_VERSION",
    "Account",
    "Approval",
    "CanonicalObject",
    "ChangeOrder",
    "Clock",
    "CloudEvent",
    "Conflict",
    "Credit",
    "Entitlement",
    "Escalation",
    "ExternalIds",
    "FieldError",
    "Forbidden",
    "IdFactory",
    "ImplementationTask",
    "Incident",
    "InvalidInput",
    "Invoice",
    "KnownRole",
    "LegalEntity",
    "MappingFailed",
    "NotFound",
    "OpsrailError",
    "Order",
    "OrderLine",
    "PayloadTooLarge",
    "Quote",
    "RateLimited",
    "Segment",
    "Subscription",
    "Unauthenticated",
    "Unavailable",
    "UnsupportedMediaType",
    "UtcMoment",
    "Vendor",
    "event_type",
    "json_path",
    "json_schema",
    "kind_of",
    "require_one_of",
]
