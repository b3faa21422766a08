"""The dashboard's files as the API serves them: from the package, under a strict CSP, only the
files that exist (no path reaches the file system), and nothing fetched from anywhere else."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from api import dashboard


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    app = FastAPI()
    app.include_router(dashboard.router)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as c:
        yield c


async def test_root_and_bare_path_redirect_to_the_dashboard(client: httpx.AsyncClient) -> None:
    for path in ("/", "/dashboard"):
        response = await client.get(path)
        assert response.status_code == 307
        # Relative, so the redirect also holds behind a path-prefixing proxy.
        assert response.headers["location"] == "dashboard/"


@pytest.mark.parametrize("path", ["/dashboard/", "/dashboard/enterprise"])
async def test_the_shell_is_served_with_a_strict_content_security_policy(
    client: httpx.AsyncClient, path: str
) -> None:
    response = await client.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    csp = dict(part.strip().split(" ", 1) for part in response.headers["content-security-policy"].split(";"))
    assert csp["default-src"] == "'none'"
    assert csp["script-src"] == "'self'"
    assert csp["style-src"] == "'self'"
    assert csp["connect-src"] == "'self'"
    assert csp["frame-ancestors"] == "'none'"
    assert "unsafe" not in response.headers["content-security-policy"]
    assert response.headers["x-content-type-options"] == "nosniff"
    # No inline script or style, no inline handler, nothing from another origin.
    html = response.text
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html)
    assert "<style" not in html and " style=" not in html and not re.search(r"\son[a-z]+=", html)
    assert "http://" not in html and "https://" not in html and "//" not in re.sub(r"<!--.*?-->", "", html)


async def test_every_referenced_asset_is_packaged(client: httpx.AsyncClient) -> None:
    html = (await client.get("/dashboard/")).text
    assets = re.findall(r'(?:src|href)="assets/([^"]+)"', html)
    assert "js/app.js" in assets and "vendor/uplot/uPlot.iife.min.js" in assets
    for name in assets:
        response = await client.get(f"/dashboard/assets/{name}")
        assert response.status_code == 200, name
        assert response.headers["content-security-policy"] == dashboard.CONTENT_SECURITY_POLICY
    js = await client.get("/dashboard/assets/js/app.js")
    assert js.headers["content-type"].startswith("text/javascript")
    # Every module the app imports is there too.
    for name, file in dashboard.STATIC.items():
        if name.startswith("js/"):
            for imported in re.findall(r'from "\./([^"]+)"', file.body.decode()):
                assert f"js/{imported}" in dashboard.STATIC, f"{name} imports missing {imported}"


async def test_the_chart_library_is_vendored_with_its_licence(client: httpx.AsyncClient) -> None:
    licence = await client.get("/dashboard/assets/vendor/uplot/LICENSE")
    assert licence.status_code == 200 and "MIT" in licence.text
    assert licence.headers["content-type"].startswith("text/plain")


async def test_server_text_is_never_parsed_as_html() -> None:
    # The dashboard builds every element with textContent (js/dom.js); a stray innerHTML or
    # insertAdjacentHTML on our own code would reopen the door to device-supplied markup.
    for name, file in dashboard.STATIC.items():
        if name.startswith("js/"):
            text = file.body.decode()
            for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
                assert sink not in text, f"{name} uses {sink}"


@pytest.mark.parametrize(
    "path",
    [
        "/dashboard/assets/../../pyproject.toml",
        "/dashboard/assets/..%2F..%2Fapp.py",
        "/dashboard/assets/%2e%2e/dashboard.py",
        "/dashboard/assets/index.html",
        "/dashboard/assets/nope.js",
        "/dashboard/assets/js",
    ],
)
async def test_only_packaged_files_are_served(client: httpx.AsyncClient, path: str) -> None:
    response = await client.get(path)
    assert response.status_code == 404


async def test_revalidation_answers_304(client: httpx.AsyncClient) -> None:
    first = await client.get("/dashboard/assets/app.css")
    etag = first.headers["etag"]
    again = await client.get("/dashboard/assets/app.css", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""
    assert first.headers["cache-control"] == "no-cache"


def test_a_bureau_tile_server_is_the_one_outside_image_source_the_policy_allows() -> None:
    policy = dashboard.content_security_policy("https://tiles.bureau.example:8443/{z}/{x}/{y}.png")
    assert "img-src 'self' blob: https://tiles.bureau.example:8443;" in policy
    assert "https://tiles" not in policy.replace("img-src 'self' blob: https://tiles.bureau.example:8443", "")
    # A same-origin tile path needs nothing more, and no tile server means none is allowed.
    assert dashboard.content_security_policy("/tiles/{z}/{x}/{y}.png") == dashboard.CONTENT_SECURITY_POLICY
    assert dashboard.content_security_policy(None) == dashboard.CONTENT_SECURITY_POLICY
