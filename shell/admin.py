"""The bureau's set-up commands: `vigil migrate`, `vigil devices register`, `vigil cameras
register`, `vigil staff …`, `vigil sites handlers|locate|hours …`, `vigil enterprises webhook …`,
`vigil keys …` (who handles what, where a site is, where notices go, who may call the API). Each
command migrates first; the staff, sites, keys and enterprises commands run in one transaction.
Also `vigil retention [--dry-run]` (ingest/retention.py), which runs its own short transactions."""

from __future__ import annotations

import argparse
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import orjson
from psycopg import AsyncConnection

from vigil.errors import VigilError
from vigil.registry import ProfileCatalogue
from vigil.settings import Settings


def add_parsers(sub: Any) -> None:
    sub.add_parser("migrate", help="apply database migrations").set_defaults(handler=_migrate)
    dev = sub.add_parser("devices", help="device registry")
    dsub = dev.add_subparsers(dest="devices_command", required=True)
    reg = dsub.add_parser("register", help="register (or update) a device")
    reg.add_argument("--enterprise", required=True)
    reg.add_argument("--site", required=True)
    reg.add_argument("--device", required=True)
    reg.add_argument("--profile", required=True, help="e.g. freezer, chiller")
    reg.add_argument(
        "--attr",
        action="append",
        help="attribute key=value (true/false and numbers are typed, anything else is a string),"
        " or key:=JSON for an explicit JSON scalar, e.g. --attr duration_s=60 --attr 'code:=\"007\"'",
    )
    reg.set_defaults(handler=_register_device)
    tok = dsub.add_parser(
        "token", help="ThingsBoard access token of a device (stored hashed; printed once when issued)"
    )
    toksub = tok.add_subparsers(dest="token_command", required=True)
    for action, text in (("issue", "issue a new token (revokes the device's earlier one)"),
                         ("revoke", "revoke the device's token")):  # fmt: skip
        toksub.add_parser(action, help=text).add_argument("device_id")
    tok.set_defaults(handler=_device_token)
    cam = sub.add_parser("cameras", help="camera registry")
    csub = cam.add_subparsers(dest="cameras_command", required=True)
    creg = csub.add_parser("register", help="register (or update) a camera")
    creg.add_argument("--enterprise", required=True)
    creg.add_argument("--site", required=True)
    creg.add_argument("--camera", required=True)
    creg.add_argument(
        "--source", required=True, help="rtsp://…, http(s)://… (MJPEG), /path/video.mp4, or push"
    )
    creg.add_argument("--fps", type=float, default=2.0, help="sampling rate (frames analysed per second)")
    creg.add_argument(
        "--zones", help='JSON: [{"name": "prep", "points": [[x,y],…], "codes": ["KITCHEN_NO_MASK"]}]'
    )
    creg.add_argument("--disabled", action="store_true")
    creg.set_defaults(handler=_register_camera)
    ctok = csub.add_parser(
        "token", help="an edge box's push token for named cameras of one enterprise (hashed; printed once)"
    )
    ctoksub = ctok.add_subparsers(dest="push_action", required=True)
    cissue = ctoksub.add_parser("issue", help="issue a push token for an edge box")
    cissue.add_argument("--enterprise", required=True)
    cissue.add_argument("--name", required=True, help="the edge box, e.g. 'kitchen 1 NVR'")
    cissue.add_argument("--camera", action="append", required=True, help="a camera it pushes for (repeat)")
    for action, text in (("rotate", "a new secret for the token; the old one stops at once"),
                         ("revoke", "revoke the token")):  # fmt: skip
        ctoksub.add_parser(action, help=text).add_argument("token_id")
    ctok.set_defaults(handler=_camera_token)

    staff = sub.add_parser("staff", help="the bureau's staff")
    ssub = staff.add_subparsers(dest="staff_command", required=True)
    add = ssub.add_parser("add", help="add (or rename) a staff member")
    add.add_argument("staff_id")
    add.add_argument("name")
    away = ssub.add_parser("away", help="mark away (their active alerts move to the next handler)")
    away.add_argument("staff_id")
    back = ssub.add_parser("back", help="mark back from away")
    back.add_argument("staff_id")

    sites = sub.add_parser("sites", help="sites")
    sitesub = sites.add_subparsers(dest="sites_command", required=True)
    handlers = sitesub.add_parser("handlers", help="set a site's A (primary), B (backup), C (specialist)")
    handlers.add_argument("site_id")
    for slot in "abc":
        handlers.add_argument(f"--{slot}", metavar="STAFF_ID", help=f"slot {slot.upper()} ('-' clears it)")
    # Sites are created by `devices register` / `cameras register` (or PUT /api/v1/sites); this
    # places one on the dashboard's site map.
    locate = sitesub.add_parser("locate", help="set a site's position on the map (WGS-84 degrees)")
    locate.add_argument("site_id")
    locate.add_argument("--lat", type=float, help="latitude, -90 to 90 (e.g. 31.205)")
    locate.add_argument("--lon", type=float, help="longitude, -180 to 180 (e.g. 121.428)")
    locate.add_argument("--clear", action="store_true", help="take the site off the map")
    # Opening hours: outside them a person on a site camera is an after-hours finding.
    hours = sitesub.add_parser("hours", help="set a site's opening hours (HH:MM, the bureau's time zone)")
    hours.add_argument("site_id")
    hours.add_argument("--open", dest="opens", metavar="HH:MM", help="opening time, e.g. 08:30")
    hours.add_argument(
        "--close", dest="closes", metavar="HH:MM", help="closing time (before --open: overnight)"
    )
    hours.add_argument("--clear", action="store_true", help="no hours: never judged closed")

    keys = sub.add_parser("keys", help="API keys (stored hashed; the key is printed once)")
    ksub = keys.add_subparsers(dest="keys_command", required=True)
    kcreate = ksub.add_parser("create", help="create a key; the first supervisor key starts here")
    kcreate.add_argument("--name", required=True)
    kcreate.add_argument("--role", required=True, choices=["operator", "supervisor", "enterprise"])
    kcreate.add_argument("--enterprise", help="the enterprise an enterprise key is scoped to")
    krevoke = ksub.add_parser("revoke", help="revoke a key and end its sessions")
    krevoke.add_argument("key_id")
    ksub.add_parser("list", help="list keys (never their secrets)")

    ent = sub.add_parser("enterprises", help="enterprises")
    esub = ent.add_subparsers(dest="enterprises_command", required=True)
    hook = esub.add_parser(
        "webhook", help="set the enterprise's notice webhook; prints its signing secret once"
    )
    hook.add_argument("enterprise_id")
    target = hook.add_mutually_exclusive_group(required=True)
    target.add_argument("--url", help="https://… endpoint that receives signed notices")
    target.add_argument("--remove", action="store_true", help="stop webhook notices")

    _add_account_parsers(sub)

    ret = sub.add_parser(
        "retention",
        help="drop telemetry and delete evidence past their retention, keeping what open cases need",
    )
    ret.add_argument("--dry-run", action="store_true", help="report what would go, change nothing")
    for parser in (staff, sites, keys, ent, ret):
        parser.set_defaults(handler=run)


async def run(settings: Settings, args: argparse.Namespace) -> int:
    from alerts import staffing
    from alerts.webhook import set_webhook
    from vigil import keys

    if args.command == "retention":
        from vigil.db import migrate

        if not settings.database_url:
            raise VigilError("set VIGIL_DATABASE_URL")
        await migrate(settings.database_url)
        return await _retention(settings, settings.database_url, dry_run=args.dry_run)
    async with _transaction(settings) as conn:
        if args.command == "staff":
            if args.staff_command == "add":
                await staffing.upsert_staff(conn, args.staff_id, args.name)
                print(f"staff {args.staff_id}: {args.name}")
            else:
                moved = await staffing.set_away(
                    conn, args.staff_id, args.staff_command == "away", actor="cli"
                )
                print(f"staff {args.staff_id} {args.staff_command}; {len(moved)} active alert(s) re-routed")
        elif args.command == "keys":
            if args.keys_command == "create":
                key_id, key = await keys.create_key(
                    conn, name=args.name, role=args.role, enterprise_id=args.enterprise, created_by="cli"
                )
                print(f"key {key_id} ({args.role}{' of ' + args.enterprise if args.enterprise else ''}):")
                print(f"{key}\n(shown once; Vigil keeps only its hash)")
            elif args.keys_command == "revoke":
                await keys.revoke_key(conn, args.key_id)
                print(f"key {args.key_id} revoked; its sessions are closed")
            else:
                cur = await conn.execute(
                    "SELECT key_id, role, coalesce(enterprise_id, '-'), name, revoked_at IS NOT NULL"
                    " FROM api_keys ORDER BY created_at"
                )
                for key_id, role, ent_id, name, revoked in await cur.fetchall():
                    print(f"{key_id}  {role:<10} {ent_id:<20} {name}{'  (revoked)' if revoked else ''}")
        elif args.command == "sites" and args.sites_command == "locate":
            await _locate_site(conn, args)
        elif args.command == "sites" and args.sites_command == "hours":
            await _site_hours(conn, args, settings.timezone)
        elif args.command == "sites":
            given = {slot.upper(): getattr(args, slot) for slot in "abc" if getattr(args, slot) is not None}
            if not given:
                raise VigilError("give at least one of --a, --b, --c")
            await staffing.set_handlers(
                conn, args.site_id, {k: None if v == "-" else v for k, v in given.items()}
            )
            print(f"site {args.site_id}: " + ", ".join(f"{k}={v}" for k, v in sorted(given.items())))
        else:
            secret = await set_webhook(conn, args.enterprise_id, None if args.remove else args.url)
            if secret is None:
                print(f"{args.enterprise_id}: webhook removed")
            else:
                print(f"{args.enterprise_id}: notices go to {args.url}")
                print(f"signing secret (shown once; verify X-Vigil-Signature with it): {secret}")
    return 0


async def _locate_site(conn: AsyncConnection[Any], args: argparse.Namespace) -> None:
    from vigil.registry import set_site_location

    if args.clear == (args.lat is not None or args.lon is not None):
        raise VigilError("give --lat and --lon, or --clear")
    await set_site_location(conn, args.site_id, args.lat, args.lon)
    where = "off the map" if args.clear else f"at {args.lat:g}, {args.lon:g}"
    print(f"site {args.site_id}: {where}")


async def _site_hours(conn: AsyncConnection[Any], args: argparse.Namespace, timezone: str) -> None:
    from vigil.registry import set_site_hours

    if args.clear == (args.opens is not None or args.closes is not None):
        raise VigilError("give --open and --close, or --clear")
    await set_site_hours(conn, args.site_id, args.opens, args.closes)
    when = "no opening hours" if args.clear else f"open {args.opens} to {args.closes} ({timezone})"
    print(f"site {args.site_id}: {when}")


async def _retention(settings: Settings, database_url: str, *, dry_run: bool) -> int:
    from ingest.retention import run_retention

    report = await run_retention(database_url, settings, dry_run=dry_run)
    if report is None:
        print("another retention pass is running (a telemetry store, or another `vigil retention`)")
        return 1
    print("\n".join(report.lines()))
    return 0


async def _migrate(settings: Settings, args: argparse.Namespace) -> int:
    from vigil.db import make_pool, migrate
    from vigil.registry import publish_profiles

    if not settings.database_url:
        raise VigilError("set VIGIL_DATABASE_URL")
    print("\n".join(await migrate(settings.database_url)) or "up to date")
    # The API checks registrations against the published profiles: publish them with the schema,
    # so a fresh deployment refuses an unknown profile before any detector has started.
    async with make_pool(settings.database_url, max_size=1) as pool, pool.connection() as conn:
        await publish_profiles(conn, profile_catalogue())
    return 0


async def _register_device(settings: Settings, args: argparse.Namespace) -> int:
    from vigil.db import make_pool, migrate
    from vigil.registry import check_device_profile, publish_profiles, register_device

    if not settings.database_url:
        raise VigilError("set VIGIL_DATABASE_URL")
    await migrate(settings.database_url)
    attributes = dict(parse_attribute(item) for item in args.attr or [])
    catalogue = profile_catalogue()
    check_device_profile(args.profile, attributes, catalogue)  # before anything is written
    async with make_pool(settings.database_url) as pool:
        await register_device(
            pool, enterprise_id=args.enterprise, site_id=args.site, device_id=args.device,
            profile=args.profile, attributes=attributes,
        )  # fmt: skip
        async with pool.connection() as conn, conn.transaction():
            await publish_profiles(conn, catalogue)  # so the API checks against the same profiles
    print(f"registered {args.device} ({args.profile}) at {args.enterprise}/{args.site}")
    return 0


_ATTR_KEY = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")  # the API's attribute key pattern
_INT = re.compile(r"^-?\d{1,18}$")
_FLOAT = re.compile(r"^-?(\d+\.\d*|\.\d+|\d+)([eE][-+]?\d{1,3})?$")


def parse_attribute(item: str) -> tuple[str, Any]:
    """`key=value` typed predictably — `true`/`false` a boolean, a decimal number a number, anything
    else the string as written — or `key:=JSON` for an explicit JSON scalar (`code:="007"`)."""
    key, sep, raw = item.partition("=")
    explicit = key.endswith(":")
    key = key.removesuffix(":") if explicit else key
    if not sep or not _ATTR_KEY.match(key):
        raise VigilError(
            f"--attr {item!r}: expected key=value or key:=JSON, the key 1-64 of A-Z a-z 0-9 _ . : -"
        )
    if explicit:
        try:
            value = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise VigilError(f"--attr {item!r}: {raw!r} is not valid JSON ({exc})") from None
        if isinstance(value, dict | list):
            raise VigilError(f"--attr {item!r}: attributes are scalars (string, number, boolean, null)")
        return key, value
    if raw in ("true", "false"):
        return key, raw == "true"
    if _INT.match(raw):
        return key, int(raw)
    if _FLOAT.match(raw):
        return key, float(raw)
    return key, raw


def profile_catalogue() -> ProfileCatalogue:
    """The shipped profiles as registration checks them: each attribute a profile reads, typed."""
    from detectors.rules.profiles import load_profiles, registration_catalogue

    return registration_catalogue(load_profiles())


@asynccontextmanager
async def _transaction(settings: Settings) -> AsyncIterator[AsyncConnection[Any]]:
    """A connection to the migrated database, in one transaction: a command does all or nothing."""
    from vigil.db import make_pool, migrate

    if not settings.database_url:
        raise VigilError("set VIGIL_DATABASE_URL")
    await migrate(settings.database_url)
    async with (
        make_pool(settings.database_url, max_size=1) as pool,
        pool.connection() as conn,
        conn.transaction(),
    ):
        yield conn


async def _device_token(settings: Settings, args: argparse.Namespace) -> int:
    from vigil import keys

    async with _transaction(settings) as conn:
        if args.token_command == "issue":  # noqa: S105 (a sub-command name, not a secret)
            token_id, token = await keys.issue_device_token(conn, args.device_id, created_by="cli")
            print(f"device {args.device_id}: access token {token_id} (MQTT username of the ThingsBoard SDK):")
            print(f"{token}\n(shown once; Vigil keeps only its hash)")
        else:
            revoked = await keys.revoke_device_token(conn, args.device_id)
            print(f"device {args.device_id}: " + ("token revoked" if revoked else "had no live token"))
    return 0


async def _register_camera(settings: Settings, args: argparse.Namespace) -> int:
    from vigil.cameras import register_camera
    from vigil.db import make_pool, migrate

    if not settings.database_url:
        raise VigilError("set VIGIL_DATABASE_URL")
    try:
        zones = orjson.loads(args.zones) if args.zones else []
    except orjson.JSONDecodeError as exc:
        raise VigilError(f"--zones is not valid JSON: {exc}") from None
    await migrate(settings.database_url)
    async with make_pool(settings.database_url) as pool:
        camera = await register_camera(
            pool, enterprise_id=args.enterprise, site_id=args.site, camera_id=args.camera,
            source=args.source, sample_fps=args.fps, zones=zones, enabled=not args.disabled,
        )  # fmt: skip
    print(f"registered camera {camera.camera_id} ({camera.source}, {camera.sample_fps:g} fps, "
          f"{len(camera.zones)} zones) at {args.enterprise}/{args.site}")  # fmt: skip
    return 0


async def _camera_token(settings: Settings, args: argparse.Namespace) -> int:
    from vigil import keys

    async with _transaction(settings) as conn:
        if args.push_action == "issue":
            token_id, token = await keys.issue_push_token(
                conn, enterprise_id=args.enterprise, name=args.name, cameras=args.camera, created_by="cli"
            )
            cameras = ", ".join(sorted(set(args.camera)))
            print(f"push token {token_id} ({args.name}, {args.enterprise}: {cameras}):")
            print(f"{token}\n(shown once; Vigil keeps only its hash)")
        elif args.push_action == "rotate":
            token = await keys.rotate_push_token(conn, args.token_id)
            print(f"push token {args.token_id} rotated; the old secret no longer works:")
            print(f"{token}\n(shown once; Vigil keeps only its hash)")
        else:
            await keys.revoke_push_token(conn, args.token_id)
            print(f"push token {args.token_id} revoked")
    return 0


def _add_account_parsers(sub: Any) -> None:
    acc = sub.add_parser("accounts", help="people's password accounts (staff and enterprise users)")
    asub = acc.add_subparsers(dest="accounts_command", required=True)
    aadd = asub.add_parser("add", help="create an account; prints a temporary password once")
    aadd.add_argument("username")
    aadd.add_argument("--role", required=True, choices=["operator", "supervisor", "enterprise"])
    aadd.add_argument("--staff", help="the staff member (`vigil staff add`) a bureau account is")
    aadd.add_argument("--enterprise", help="the enterprise an enterprise account belongs to")
    aadd.add_argument("--name", help="display name (default: the staff member's name, or the username)")
    apw = asub.add_parser("passwd", help="reset the password (to be changed at sign-in); ends sessions")
    apw.add_argument("username")
    for parser in (aadd, apw):
        parser.add_argument(
            "--password-stdin", action="store_true", help="read the password from stdin instead of making one"
        )
    asub.add_parser("disable", help="disable the account and end its sessions").add_argument("username")
    asub.add_parser("enable", help="enable the account again and clear its lock-out").add_argument("username")
    unlink = "forget the single sign-on identity bound to the account (the next sign-in binds again)"
    asub.add_parser("sso-unlink", help=unlink).add_argument("username")
    asub.add_parser("list", help="list accounts (never their hashes)")
    acc.set_defaults(handler=_accounts)


async def _accounts(settings: Settings, args: argparse.Namespace) -> int:
    """`vigil accounts add|passwd|disable|enable|sso-unlink|list`: people's accounts (vigil/accounts.py)."""
    import sys

    from vigil import accounts

    command, username = args.accounts_command, getattr(args, "username", "")
    temporary = password = None
    if command in ("add", "passwd"):
        # Never an argument: a password on the command line lands in shell history and `ps`.
        password = sys.stdin.readline().rstrip("\r\n") if args.password_stdin else None
        if password is not None:
            accounts.check_password(password, accounts.normalise_username(username))
        else:
            password = temporary = accounts.temporary_password()
    async with _transaction(settings) as conn:
        if password is not None:
            hasher = accounts.Hasher(
                time_cost=settings.account_argon2_time_cost,
                memory_kib=settings.account_argon2_memory_kib,
                parallelism=settings.account_argon2_parallelism,
            )
            password_hash = hasher.hash(password)
        if command == "add":
            account = await accounts.create_account(
                conn, username=username, role=args.role, password_hash=password_hash, created_by="cli",
                staff_id=args.staff, enterprise_id=args.enterprise, display_name=args.name,
            )  # fmt: skip
            print(f"account {account.username} ({account.role}, {account.display_name}) created")
        elif command == "passwd":
            await accounts.set_password(
                conn, accounts.normalise_username(username), password_hash, must_change=True
            )
            print(f"account {username}: password reset; its sessions are closed")
        elif command in ("disable", "enable"):
            await accounts.set_disabled(conn, accounts.normalise_username(username), command == "disable")
            print(
                f"account {username} {command}d"
                + ("; its sessions are closed" if command == "disable" else "")
            )
        elif command == "sso-unlink":
            had = await accounts.unlink_sso(conn, accounts.normalise_username(username))
            done = "single sign-on identity unlinked" if had else "no single sign-on identity was linked"
            print(f"account {username}: {done}")
        else:
            cur = await conn.execute(
                "SELECT username, role, coalesce(staff_id, enterprise_id), display_name,"
                " disabled_at IS NOT NULL FROM accounts ORDER BY username"
            )
            for name, role, owner, display, disabled in await cur.fetchall():
                print(f"{name:<24} {role:<10} {owner:<20} {display}{'  (disabled)' if disabled else ''}")
    if temporary is not None:
        print(f"temporary password (shown once; to be changed at first sign-in): {temporary}")
    return 0
