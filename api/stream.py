"""A live stream of alert changes (server-sent events) that resumes after a reconnect."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/api/v1", tags=["stream"])
