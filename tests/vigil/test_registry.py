"""The cached device registry on the real PostgreSQL: the hot path never waits, a miss reloads."""

from __future__ import annotations

from vigil.registry import DeviceRegistry, register_device


async def test_fresh_answers_from_a_current_cache_and_defers_misses_and_stale_caches(pool, uid):
    await register_device(
        pool, enterprise_id=f"ent-{uid}", site_id=f"site-{uid}", device_id=f"dev-{uid}",
        profile="freezer", attributes={"max_temp_c": -20},
    )  # fmt: skip
    registry = DeviceRegistry(pool, refresh_s=30.0, miss_refresh_s=0.0)
    assert registry.fresh(f"dev-{uid}") is None  # never loaded: stale by definition
    await registry.load()
    device = registry.fresh(f"dev-{uid}")
    assert device is not None and device.attributes == {"max_temp_c": -20}
    assert registry.fresh(f"new-{uid}") is None  # a miss goes to lookup, which reloads
    await register_device(
        pool, enterprise_id=f"ent-{uid}", site_id=f"site-{uid}", device_id=f"new-{uid}", profile="chiller"
    )
    assert registry.fresh(f"new-{uid}") is None
    found = await registry.lookup(f"new-{uid}")
    assert found is not None and found.profile == "chiller"
    assert registry.fresh(f"new-{uid}") == found


async def test_a_registered_device_reaches_a_listening_cache_at_once(pool, uid) -> None:
    """No periodic reload and no miss in 60 s: only the table's change notification can tell it."""
    import asyncio
    import time

    from vigil.cameras import CameraRegistry, register_camera
    from vigil.registry import DeviceRegistry, register_device

    devices, cameras = DeviceRegistry(pool), CameraRegistry(pool)
    tasks = [asyncio.create_task(r.refresh_forever(60.0)) for r in (devices, cameras)]
    try:
        deadline = time.monotonic() + 10
        while not (devices.loaded_at and cameras.loaded_at) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)  # the first load happens once each is listening
        await register_device(
            pool, enterprise_id=f"e-{uid}", site_id=f"s-{uid}", device_id=f"d-{uid}", profile="freezer"
        )
        await register_camera(
            pool, enterprise_id=f"e-{uid}", site_id=f"s-{uid}", camera_id=f"c-{uid}", source="push"
        )
        deadline = time.monotonic() + 5
        while (
            devices.get(f"d-{uid}") is None or cameras.get(f"c-{uid}") is None
        ) and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        assert devices.get(f"d-{uid}") is not None, "the device cache did not hear of the new device"
        assert cameras.get(f"c-{uid}") is not None, "the camera cache did not hear of the new camera"
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
