"""`vigil staff`, `vigil sites handlers`, `vigil enterprises webhook` as a user runs them: the real
command in a subprocess against the session's PostgreSQL."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.lifecycle import Site, alert, open_alert, violation


def vigil(settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = os.environ | {"VIGIL_DATABASE_URL": settings.database_url, "VIGIL_MODE": "production"}
    return subprocess.run(
        [sys.executable, "-m", "shell.cli", *args], env=env, capture_output=True, text=True, timeout=60
    )


async def test_staff_handlers_and_away_from_the_command_line(settings, pool, site: Site, uid):
    new = f"li-{uid}"
    done = vigil(settings, "staff", "add", new, "Li Na")
    assert done.returncode == 0, done.stderr
    done = vigil(settings, "sites", "handlers", site.site_id, "--b", new, "--c", "-")
    assert done.returncode == 0, done.stderr
    async with pool.connection() as conn:
        handlers = await (
            await conn.execute(
                "SELECT slot, staff_id FROM site_handlers WHERE site_id=%s ORDER BY slot", (site.site_id,)
            )
        ).fetchall()
    assert handlers == [("A", site.staff["A"]), ("B", new)]

    a = await open_alert(pool, violation(site))
    done = vigil(settings, "staff", "away", site.staff["A"])
    assert done.returncode == 0 and "1 active alert(s) re-routed" in done.stdout, done.stdout + done.stderr
    assert (await alert(pool, a["alert_id"]))["assignee"] == new

    unknown = vigil(settings, "sites", "handlers", site.site_id, "--a", "nobody")
    assert unknown.returncode == 2 and "staff member nobody not found" in unknown.stderr


async def test_webhook_is_set_with_a_secret_shown_once_and_refused_for_bad_urls(settings, pool, site: Site):
    done = vigil(
        settings, "enterprises", "webhook", site.enterprise_id, "--url", "https://hooks.example.com/vigil"
    )
    assert done.returncode == 0, done.stderr
    secret = done.stdout.rsplit(": ", 1)[1].strip()
    async with pool.connection() as conn:
        stored = await (
            await conn.execute(
                "SELECT webhook_url, webhook_secret FROM enterprises WHERE enterprise_id=%s",
                (site.enterprise_id,),
            )
        ).fetchone()
    assert stored == ("https://hooks.example.com/vigil", secret) and len(secret) >= 32

    bad = vigil(settings, "enterprises", "webhook", site.enterprise_id, "--url", "ftp://example.com/x")
    assert bad.returncode == 2 and "vigil:" in bad.stderr
    removed = vigil(settings, "enterprises", "webhook", site.enterprise_id, "--remove")
    assert removed.returncode == 0 and "removed" in removed.stdout
