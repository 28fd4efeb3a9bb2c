"""Ingestion: decoding, source mapping, validation and normalisation of events (pure)."""

from opsrail.ingest._normalise import NormalisedEvent, field_errors, normalise
from opsrail.ingest._payloads import (
    BatchItem,
    check_single_media_type,
    decode_json,
    media_type,
    nul_errors,
    refuse_nul,
    split_batch,
)
from opsrail.ingest._records import Arrival, DeadLetter, Receipt, StoredEvent, rfc3339
from opsrail.ingest._sources import builtin_mappers
from opsrail.ingest.mappers._base import SourceMapper

__all__ = [
    "Arrival",
    "BatchItem",
    "DeadLetter",
    "NormalisedEvent",
    "Receipt",
    "SourceMapper",
    "StoredEvent",
    "builtin_mappers",
    "check_single_media_type",
    "decode_json",
    "field_errors",
    "media_type",
    "normalise",
    "nul_errors",
    "refuse_nul",
    "rfc3339",
    "split_batch",
]
