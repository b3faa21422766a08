"""Request-scoped access to the resources the lifespan opens."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request, status
from psycopg_pool import AsyncConnectionPool

from vigil.errors import IllegalTransition, InvalidRequest, NotFound

# How long a request waits for a pooled connection before the API answers 503.
ACQUIRE_TIMEOUT_S = 5.0


def get_pool(request: Request) -> AsyncConnectionPool[Any]:
    pool: AsyncConnectionPool[Any] | None = getattr(request.app.state, "pool", None)
    if pool is None:  # before lifespan start-up or after shutdown
        raise HTTPException(status_code=status.HTTP_503_SERVICE_UNAVAILABLE, detail="database pool not open")
    return pool


Pool = Annotated[AsyncConnectionPool[Any], Depends(get_pool)]


@contextmanager
def refusals() -> Iterator[None]:
    """Lifecycle and registry refusals as HTTP: unknown (or not the caller's) 404, a move the
    state does not allow 409, refused content 422."""
    try:
        yield
    except NotFound as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None
    except IllegalTransition as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    except InvalidRequest as exc:
        raise HTTPException(422, str(exc)) from None  # the constant's name differs across Starlette versions
