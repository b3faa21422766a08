"""Registry management (enterprises, sites, devices, cameras, staff) and per-site status."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/api/v1", tags=["registry"])
