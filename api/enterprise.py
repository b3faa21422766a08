"""The enterprise's own API: its notices, its alerts, its rectifications, its compliance score."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/api/v1/enterprise", tags=["enterprise"])
