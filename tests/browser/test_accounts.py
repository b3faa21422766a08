"""Signing in with a username and password in the dashboard, in Chinese (the default), against a
running Vigil (tests/browser/running.py): a staff member's first sign-in leads to the password
change, the new password then works and the old one does not; a restaurant manager's account
signs in on a phone-sized page to the enterprise view."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.async_api import Page, expect

from tests.browser.conftest import Pages
from tests.browser.running import Running
from vigil.accounts import Hasher, create_account

pytestmark = pytest.mark.integration

FIRST = "temporary-Pass-2024"
CHOSEN = "my-own-Pass-2025"


async def _account(pool: Any, **fields: Any) -> None:
    async with pool.connection() as conn, conn.transaction():
        await create_account(conn, password_hash=Hasher().hash(FIRST), created_by="test", **fields)


async def _sign_in(page: Page, username: str, password: str) -> None:
    await page.get_by_label("用户名", exact=True).fill(username)
    await page.get_by_label("密码", exact=True).fill(password)
    await page.get_by_role("button", name="登录").click()


async def test_a_staff_member_signs_in_with_a_password_in_chinese(
    vigil: Running, pages: Pages, pool: Any
) -> None:
    username = f"zw-{vigil.site.site_id}"[:64].lower()
    await _account(pool, username=username, role="operator", staff_id=vigil.site.staff["A"])
    page = await pages.new("staff")  # no language chosen: zh-CN
    await page.goto(f"{vigil.url}/dashboard/")
    await expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
    # The username and password come first; the API key is still offered, second.
    await expect(page.get_by_label("接口密钥")).to_be_visible()

    await _sign_in(page, username, "not-my-password")
    await expect(page.locator("#login-error")).to_have_text("用户名或密码错误。")

    # A password a supervisor chose: the first stop is the password change.
    await _sign_in(page, username, FIRST)
    await expect(page.get_by_test_id("subject")).to_have_text("handler A")
    await expect(page.get_by_test_id("must-change")).to_be_visible()
    assert page.url.endswith("#/account")
    await page.get_by_label("当前密码").fill(FIRST)
    await page.get_by_label("新密码", exact=True).fill("short")
    await page.get_by_label("再次输入新密码").fill("short")
    await page.get_by_role("button", name="修改密码").click()
    await expect(page.get_by_test_id("account-status")).to_contain_text("至少需要 10 个字符")
    await page.get_by_label("新密码", exact=True).fill(CHOSEN)
    await page.get_by_label("再次输入新密码").fill(CHOSEN)
    await page.get_by_role("button", name="修改密码").click()
    await expect(page.get_by_test_id("account-status")).to_have_text("密码已修改，您的其他登录会话已退出。")
    stored = await page.evaluate("JSON.stringify(sessionStorage)")
    assert FIRST not in stored and CHOSEN not in stored  # only the session token is kept

    await page.get_by_role("button", name="退出登录").click()
    await _sign_in(page, username, FIRST)
    await expect(page.locator("#login-error")).to_have_text("用户名或密码错误。")
    await _sign_in(page, username, CHOSEN)
    await expect(page.get_by_test_id("role")).to_have_text("值班员")
    await expect(page.locator("#live")).to_have_attribute("data-state", "live")
    # Back on the page it was on (the account page), no longer asked to change the password.
    await expect(page.get_by_role("link", name="我的账号")).to_have_attribute("aria-current", "page")
    await expect(page.get_by_test_id("must-change")).to_have_count(0)
    assert not pages.errors, pages.errors
    assert not pages.csp_violations(), pages.csp_violations()


async def test_a_restaurant_manager_signs_in_on_a_phone(vigil: Running, pages: Pages, pool: Any) -> None:
    username = f"mgr-{vigil.site.site_id}"[:64].lower()
    await _account(
        pool,
        username=username,
        role="enterprise",
        enterprise_id=vigil.site.enterprise_id,
        display_name="王经理",
    )
    page = await pages.new("manager", width=360, height=740)
    await page.goto(f"{vigil.url}/dashboard/")
    await _sign_in(page, username, FIRST)
    await expect(page.get_by_test_id("subject")).to_have_text("王经理")
    await expect(page.get_by_test_id("role")).to_have_text("企业")
    assert "/dashboard/enterprise#/account" in page.url
    width = await page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert width[0] <= width[1], f"{width[0]} px wide in a {width[1]} px window"
    await page.get_by_role("link", name="通知与告警").click()
    await expect(page.locator("#live")).to_have_attribute("data-state", "live")
    assert not pages.errors, pages.errors
