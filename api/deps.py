"""Request-scoped access to the resources the lifespan opens."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request, status
from psycopg_pool import AsyncConnectionPool


def get_pool(request: Request) -> AsyncConnectionPool[Any]:
    pool: AsyncConnectionPool[Any] | None = getattr(request.app.state, "pool", None)
    if pool is None:  # before lifespan start-up or after shutdown
        raise HTTPException(status_code=status.HTTP_503_SERVICE_UNAVAILABLE, detail="database pool not open")
    return pool


Pool = Annotated[AsyncConnectionPool[Any], Depends(get_pool)]
