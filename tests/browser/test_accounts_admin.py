"""Account management in the dashboard, in Chinese, against a running Vigil (tests/browser/running.py):
a supervisor adds an enterprise account and a staff account, resets a password and disables an
account on #/accounts (an operator is not offered the page); the restaurant manager then signs in
on a phone with the password shown once, replaces it, and downloads the enterprise's own alerts as
CSV and Excel: only its own, whatever the page asks. And a staff member signs in with the bureau's
single sign-on (a real OpenID provider, oidc-provider-mock, on a free port), offered only where one
is configured."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import openpyxl
import pytest
from playwright.async_api import Page, expect
from pydantic import SecretStr

from api.server import ApiService
from shell.infra import free_port
from tests.api.conftest import Seeder
from tests.browser.conftest import Pages
from tests.browser.running import Running
from tests.browser.test_wall import _too_wide
from vigil.accounts import Hasher, create_account

pytestmark = pytest.mark.integration

BOSS_PASSWORD = "supervisor-Pass-2024"
CHOSEN = "manager-own-Pass-2025"


async def _sign_in(page: Page, username: str, password: str) -> None:
    await page.get_by_label("用户名", exact=True).fill(username)
    await page.get_by_label("密码", exact=True).fill(password)
    await page.get_by_role("button", name="登录").click()


async def _downloaded(page: Page, test_id: str, suffix: str) -> bytes:
    async with page.expect_download() as info:
        await page.get_by_test_id(test_id).click()
    download = await info.value
    assert download.suggested_filename.endswith(suffix), download.suggested_filename
    path = await download.path()
    assert path is not None, await download.failure()
    return Path(path).read_bytes()


async def test_a_supervisor_manages_accounts_and_a_manager_exports_only_its_own(
    vigil: Running, pages: Pages, pool: Any, uid: str
) -> None:
    site = vigil.site
    boss = f"boss-{uid}"[:64].lower()
    async with pool.connection() as conn, conn.transaction():
        await conn.execute("INSERT INTO staff (staff_id, name) VALUES (%s, '主管老周')", (f"boss-{uid}",))
        await create_account(
            conn, username=boss, role="supervisor", staff_id=f"boss-{uid}", must_change=False,
            password_hash=Hasher().hash(BOSS_PASSWORD), created_by="test",
        )  # fmt: skip
    now = datetime.now(UTC)
    own = await Seeder(pool, uid).alert(1, created_at=now, enterprise=site.enterprise_id, site=site.site_id)
    other = Seeder(pool, f"{uid}-x")
    await other.registry()
    await other.alert(2, created_at=now)

    # An operator is not offered the page (and the API would refuse it).
    operator = await pages.new("operator")
    await operator.goto(f"{vigil.url}/dashboard/")
    await operator.get_by_label("接口密钥").fill(vigil.operator_key)
    await operator.get_by_role("button", name="登录").click()
    await expect(operator.get_by_role("link", name="告警大屏")).to_be_visible()
    await expect(operator.get_by_role("link", name="账号管理")).to_have_count(0)

    page = await pages.new("supervisor", width=360, height=740)  # every page fits a phone
    page.on("dialog", lambda dialog: dialog.accept())  # the confirmations of reset and disable
    await page.goto(f"{vigil.url}/dashboard/")
    await _sign_in(page, boss, BOSS_PASSWORD)
    await page.get_by_role("link", name="账号管理").click()
    mine = page.locator(f"[data-testid=account][data-username='{boss}']")
    await expect(mine).to_contain_text("主管")
    await expect(mine.locator("[data-action=disable]")).to_have_count(0)  # not one's own session
    width = await page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert width[0] <= width[1], f"{width[0]} px wide in a {width[1]} px window: {await _too_wide(page)}"

    # An enterprise account: the temporary password is shown once.
    form = page.get_by_test_id("add-account")
    manager = f"mgr-{uid}"[:64].lower()
    await form.get_by_label("用户名", exact=True).fill(manager)
    await form.get_by_label("账号类型").select_option("enterprise")
    await form.get_by_label("企业", exact=True).select_option(site.enterprise_id)
    await form.get_by_label("使用人姓名").fill("王经理")
    await page.get_by_role("button", name="创建账号").click()
    secret = page.get_by_test_id("one-time-password")
    await expect(secret).to_contain_text(f"已创建账号 {manager}")
    temporary = (await page.get_by_test_id("new-password").text_content() or "").strip()
    assert len(temporary) >= 10
    row = page.locator(f"[data-testid=account][data-username='{manager}']")
    await expect(row).to_contain_text("王经理")
    await expect(row.get_by_test_id("account-state")).to_have_text("待修改密码")
    await page.get_by_role("button", name="我已记下").click()
    await expect(secret).to_be_hidden()
    assert temporary not in await page.content()  # gone from the page once noted

    # A staff account, mapped to a staff record and a role; its staff member is then not offered again.
    clerk = f"clerk-{uid}"[:64].lower()
    await form.get_by_label("用户名", exact=True).fill(clerk)
    await form.get_by_label("工作人员", exact=True).select_option(site.staff["B"])
    await form.get_by_label("角色", exact=True).select_option("operator")
    await page.get_by_role("button", name="创建账号").click()
    clerk_row = page.locator(f"[data-testid=account][data-username='{clerk}']")
    await expect(clerk_row).to_contain_text("handler B")
    await expect(clerk_row).to_contain_text("值班员")
    first = (await page.get_by_test_id("new-password").text_content() or "").strip()
    offered = await page.locator("#acct-staff option").evaluate_all("os => os.map(o => o.value)")
    assert site.staff["B"] not in offered and site.staff["C"] in offered
    # The same username again is refused, in Chinese.
    await form.get_by_label("用户名", exact=True).fill(clerk)
    await form.get_by_label("工作人员", exact=True).select_option(site.staff["C"])
    await page.get_by_role("button", name="创建账号").click()
    await expect(page.get_by_test_id("add-account-error")).to_have_text(
        "该用户名已被使用，或该工作人员已有账号。"
    )

    # Reset: a new password, shown once; then disable, and the account cannot sign in.
    await clerk_row.locator("[data-action=reset]").click()
    await expect(secret).to_contain_text(f"{clerk} 的新临时密码")
    second = (await page.get_by_test_id("new-password").text_content() or "").strip()
    assert second and second != first
    await clerk_row.locator("[data-action=disable]").click()
    await expect(clerk_row.get_by_test_id("account-state")).to_have_text("已停用")
    await expect(clerk_row.locator("[data-action=enable]")).to_be_visible()
    async with httpx.AsyncClient(base_url=vigil.url) as http:
        refused = await http.post("/api/v1/auth/login", json={"username": clerk, "password": second})
    assert refused.status_code == 403, refused.text

    # The manager, on a phone: the shown password works once, is replaced, and the export is its own.
    phone = await pages.new("manager", width=360, height=740)
    await phone.goto(f"{vigil.url}/dashboard/")
    await _sign_in(phone, manager, temporary)
    await expect(phone.get_by_test_id("must-change")).to_be_visible()
    await phone.get_by_label("当前密码").fill(temporary)
    await phone.get_by_label("新密码", exact=True).fill(CHOSEN)
    await phone.get_by_label("再次输入新密码").fill(CHOSEN)
    await phone.get_by_role("button", name="修改密码").click()
    await expect(phone.get_by_test_id("account-status")).to_have_text("密码已修改，您的其他登录会话已退出。")
    await phone.get_by_role("link", name="通知与告警").click()
    await expect(phone.get_by_test_id("enterprise-alert")).to_have_count(1)
    width = await phone.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert width[0] <= width[1], f"{width[0]} px wide in a {width[1]} px window: {await _too_wide(page)}"

    saved = await _downloaded(phone, "enterprise-export-csv", ".csv")
    rows = list(csv.reader(io.StringIO(saved.decode("utf-8-sig"))))
    assert rows[0][:2] == ["告警编号", "违规类型"] and [r[0] for r in rows[1:]] == [own]
    book = openpyxl.load_workbook(io.BytesIO(await _downloaded(phone, "enterprise-export-xlsx", ".xlsx")))
    assert [r[0] for r in list(book.worksheets[0].iter_rows(values_only=True))[1:]] == [own]
    assert not pages.errors, pages.errors
    assert not pages.csp_violations(), pages.csp_violations()


@pytest.mark.filterwarnings("ignore:get_jwt_config:DeprecationWarning")  # the provider's own Authlib use
async def test_a_staff_member_signs_in_with_the_bureaus_single_sign_on(
    vigil: Running, pages: Pages, pool: Any, uid: str
) -> None:
    """The sign-in page offers the provider only where one is configured; coming back from it,
    the person is signed in to their own account (or told why not)."""
    from oidc_provider_mock import User, run_server_in_thread

    username = f"sso-{uid}"
    async with pool.connection() as conn, conn.transaction():
        await create_account(
            conn, username=username, role="operator", staff_id=vigil.site.staff["A"],
            password_hash=Hasher().hash(BOSS_PASSWORD), created_by="test",
        )  # fmt: skip
    plain = await pages.new("no-sso")
    await plain.goto(f"{vigil.url}/dashboard/")
    await expect(plain.get_by_label("接口密钥")).to_be_visible()
    await expect(plain.get_by_test_id("sso")).to_have_count(0)  # the running Vigil has no provider

    people = [User(sub=f"p-{uid}", claims={"preferred_username": username}), User(sub=f"q-{uid}", claims={})]
    with run_server_in_thread(user_claims=people) as provider:
        port = free_port()
        configured = vigil.settings.model_copy(
            update={
                "api_port": port, "public_url": f"http://127.0.0.1:{port}",
                "oidc_issuer": f"http://localhost:{provider.server_port}", "oidc_client_id": "vigil",
                "oidc_client_secret": SecretStr(f"browser-sso-secret-{uid}"),
            }
        )  # fmt: skip
        api = ApiService(configured)
        await api.start()
        try:
            page = await pages.new("sso")
            await page.goto(f"{api.url}/dashboard/")
            await page.get_by_role("link", name="使用统一身份认证登录").click()
            await page.get_by_role("button", name=f"p-{uid}").click()  # the provider's sign-in
            await expect(page.get_by_test_id("subject")).to_have_text("handler A")
            await expect(page.get_by_test_id("role")).to_have_text("值班员")
            await expect(page.get_by_role("link", name="我的账号")).to_be_visible()
            assert "#/sso" not in page.url and "vt_" not in page.url
            stored = await page.evaluate("JSON.parse(sessionStorage.getItem('vigil.session'))")
            assert stored["account"] == username
            await expect(page.locator("#live")).to_have_attribute("data-state", "live")

            await page.get_by_role("button", name="退出登录").click()
            await page.get_by_role("link", name="使用统一身份认证登录").click()
            await page.get_by_role("button", name=f"q-{uid}").click()  # known there, not here
            await expect(page.locator("#login-error")).to_contain_text("没有工作人员账号")
        finally:
            await api.stop()
    assert not pages.errors, pages.errors
    assert not pages.csp_violations(), pages.csp_violations()
