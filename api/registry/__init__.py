"""Registry management (enterprises, sites, devices, cameras, staff) and per-site status.

Reads need an operator (or supervisor), writes a supervisor; enterprise keys reach none of it.

- A PUT creates or replaces the whole record: 201 when it created it, 200 when it updated it.
  What a body refers to (an enterprise, a site, a staff member) must already exist, or the body is
  refused (422); an unknown id in the path of a GET or DELETE is a 404.
- Lists are keyset-paginated in id order: pass a page's `next_cursor` as `cursor` for the next.
- Secrets stay in the database. An enterprise's webhook signing secret is never selected. The
  password in a camera or webhook URL (`rtsp://user:pass@host`), and the value of a query
  parameter named like a credential (`?password=…`, `?token=…`), is shown as `***`. A PUT that
  sends a camera's masked source back unchanged keeps the stored credential, so a read-edit-write
  round trip does not overwrite it with the mask; any other source holding the mask is refused.
- Deleting: an enterprise only while it has no sites (409 otherwise, and while API keys or other
  rows still name it). A device only while no active alert is raised on it (409: close or dismiss
  those first); its closed alerts stay as history, naming it by id. Cameras are not deleted but
  disabled (`enabled: false`), which keeps their alerts' source meaningful.
- A site moves to another enterprise only while no device, camera or active alert is on it (409).
- `GET /sites/status` is a fixed path, so a site with the id `status` cannot be created here.

One module per resource (enterprises, sites with their handlers and status, devices, cameras,
staff), what they share in `common`; this module assembles their routes into `router`.
"""

from __future__ import annotations

from fastapi import APIRouter

from api.registry import cameras, devices, enterprises, sites, staff
from api.registry.common import mask_url

__all__ = ["mask_url", "router"]

router = APIRouter(prefix="/api/v1", tags=["registry"])
# In this order, which is the order of the paths in the OpenAPI document.
for _resource in (enterprises, sites, devices, cameras, staff):
    router.include_router(_resource.router)
