"""Opsrail: governed AI operations for SaaS service delivery and escalations."""

__version__ = "0.1.0"
