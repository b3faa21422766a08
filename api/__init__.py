"""Vigil's HTTP API: the operator-facing REST interface over the alert store."""

from api.app import create_app
from api.server import ApiService

__all__ = ["ApiService", "create_app"]
