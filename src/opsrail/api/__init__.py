"""The HTTP API (FastAPI): ingestion, listings, schemas, operations."""

from opsrail.api._app import create_app

__all__ = ["create_app"]
