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
