"""The monitoring-centre dashboard and the enterprise page, served from packaged static files."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["dashboard"])
