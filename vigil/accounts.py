"""Personal accounts: a username and a password, for people (bureau staff, enterprise users).

API keys (vigil/keys.py) stay for machines. A bureau account is one staff record, so the audit
names the person; an enterprise account belongs to one enterprise and sees only its data.

- Passwords are hashed with argon2id (argon2-cffi), never stored or logged; verification is the
  library's constant-time comparison, and an unknown username is checked against a dummy hash so
  it costs the same time as a wrong password. A hash made with older cost parameters is replaced
  at its owner's next sign-in (`check_needs_rehash`).
- Lock-out per account, in the database (so it holds across addresses and API processes): after
  `failures` wrong passwords in a row the account is locked for `base_s`, doubled with each further
  wrong password (tried once the lock has passed) up to `max_s`. A right password resets it; a
  supervisor's enable or password reset clears it. While locked, no password is even checked.
- Sessions are `vt_…` tokens like a key's, stored hashed in `account_sessions`.
"""

from __future__ import annotations

import asyncio
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from psycopg import AsyncConnection

from vigil.errors import InvalidRequest, NotFound
from vigil.keys import ROLES, TOKEN_PREFIX, Role, credential_digest

USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{2,63}$")
_TOKEN = re.compile(r"^vt_[A-Za-z0-9_-]{43}$")
MIN_PASSWORD = 10
MAX_PASSWORD = 1024  # bounds the work one request can ask of the hasher
# The most common passwords that pass the length rule (public breach lists' top entries, and the
# obvious Chinese-keyboard ones). Not a breach database: a floor against the laziest choices.
COMMON_PASSWORDS = frozenset(
    """
    1234567890 0123456789 12345678910 1234567890a a1234567890 1q2w3e4r5t 1qaz2wsx3edc qwertyuiop
    qwertyuiop123 qwerty12345 qwerty123456 password12 password123 password1234 passw0rd123
    iloveyou123 abcdefghij abc1234567 abcd123456 aa123456789 1111111111 0000000000 5201314520
    5201314000 woaini1314 woaini520 1314520520 zxcvbnm123 asdfghjkl1 administrator admin12345
    admin123456 welcome123 letmein123 changeme123 vigil12345 vigilvigil monitoring
    """.split()  # noqa: SIM905 (a word list reads and diffs better as text)
)


@dataclass(frozen=True, slots=True)
class LockoutPolicy:
    failures: int = 5
    base_s: float = 60.0
    max_s: float = 3600.0

    def lock_for(self, failed_count: int) -> float | None:
        """Seconds to lock an account after its `failed_count`-th wrong password in a row."""
        if failed_count < self.failures:
            return None
        return min(self.max_s, self.base_s * 2.0 ** min(failed_count - self.failures, 30))


@dataclass(frozen=True, slots=True)
class Account:
    username: str
    display_name: str
    role: Role
    staff_id: str | None
    enterprise_id: str | None


def normalise_username(username: str) -> str:
    return username.strip().lower()


def check_password(password: str, username: str) -> None:
    """Refuse a password that is too short, too long, the username, or a common one."""
    if len(password) < MIN_PASSWORD:
        raise InvalidRequest(f"a password needs at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise InvalidRequest(f"a password has at most {MAX_PASSWORD} characters")
    folded = password.strip().lower()
    if username and username.lower() in folded:
        raise InvalidRequest("a password must not contain the username")
    if folded in COMMON_PASSWORDS or len(set(folded)) < 3:
        raise InvalidRequest("that password is too common; choose another")


def temporary_password() -> str:
    """A random password for a new or reset account (96 bits), shown once, to be changed."""
    return secrets.token_urlsafe(12)


def _utf8(password: str) -> bytes:
    # A JSON string may carry a lone surrogate, which strict UTF-8 cannot encode: a 500 otherwise.
    return password.encode("utf-8", "surrogatepass")


class Hasher:
    """argon2id hashing with the configured cost; `slots` bounds concurrent hashes (memory)."""

    def __init__(self, *, time_cost: int = 3, memory_kib: int = 65_536, parallelism: int = 4, slots: int = 2):
        self._ph = PasswordHasher(
            time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism, type=Type.ID
        )
        self._slots = asyncio.Semaphore(slots)
        # Checked against when the username is unknown, so that case takes as long as a wrong password.
        self._dummy = self._ph.hash(secrets.token_bytes(16))

    def hash(self, password: str) -> str:
        return self._ph.hash(_utf8(password))

    def verify(self, stored: str | None, password: str) -> tuple[bool, str | None]:
        """(right?, a new hash when the stored one was made with other parameters)."""
        try:
            self._ph.verify(stored or self._dummy, _utf8(password))
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False, None
        if stored is None:
            return False, None
        return True, self._ph.hash(_utf8(password)) if self._ph.check_needs_rehash(stored) else None

    async def ahash(self, password: str) -> str:
        async with self._slots:
            return await asyncio.to_thread(self.hash, password)

    async def averify(self, stored: str | None, password: str) -> tuple[bool, str | None]:
        # In a thread: a hash takes tens of milliseconds of CPU the event loop must not lose.
        async with self._slots:
            return await asyncio.to_thread(self.verify, stored, password)


# --- the accounts table ---------------------------------------------------------------------------


async def create_account(
    conn: AsyncConnection[Any],
    *,
    username: str,
    role: str,
    password_hash: str,
    created_by: str,
    staff_id: str | None = None,
    enterprise_id: str | None = None,
    display_name: str | None = None,
    must_change: bool = True,
) -> Account:
    """Create an account. A bureau account (operator, supervisor) is a staff member's, and takes
    their name; an enterprise account names its enterprise and a display name (the person)."""
    username = normalise_username(username)
    if not USERNAME.match(username):
        raise InvalidRequest("a username is 3-64 of a-z 0-9 . _ - starting with a letter or digit")
    if role not in ROLES:
        raise InvalidRequest(f"role must be one of {', '.join(ROLES)}")
    if role == "enterprise":
        if enterprise_id is None or staff_id is not None:
            raise InvalidRequest("an enterprise account needs an enterprise and no staff id")
        cur = await conn.execute("SELECT 1 FROM enterprises WHERE enterprise_id = %s", (enterprise_id,))
        if await cur.fetchone() is None:
            raise NotFound(f"enterprise {enterprise_id} not found")
        name = (display_name or username).strip()
    else:
        if staff_id is None or enterprise_id is not None:
            raise InvalidRequest("a bureau account needs a staff id (`vigil staff add`) and no enterprise")
        cur = await conn.execute("SELECT name FROM staff WHERE staff_id = %s", (staff_id,))
        row = await cur.fetchone()
        if row is None:
            raise NotFound(f"staff member {staff_id} not found")
        name = (display_name or row[0]).strip()
    if not 1 <= len(name) <= 200 or not name.isprintable():
        raise InvalidRequest("a display name is 1-200 printable characters")
    cur = await conn.execute(
        "INSERT INTO accounts (username, display_name, role, staff_id, enterprise_id, password_hash,"
        " must_change, created_by) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
        " ON CONFLICT DO NOTHING RETURNING 1",
        (username, name, role, staff_id, enterprise_id, password_hash, must_change, created_by),
    )
    if await cur.fetchone() is None:
        raise InvalidRequest(f"username {username} is taken, or staff member {staff_id} has an account")
    return Account(username, name, role, staff_id, enterprise_id)


async def set_password(
    conn: AsyncConnection[Any],
    username: str,
    password_hash: str,
    *,
    must_change: bool,
    keep_token: str | None = None,
) -> None:
    """Replace the password; clears any lock-out and ends every session but `keep_token` (the
    caller's own, when a person changes their own password)."""
    cur = await conn.execute(
        "UPDATE accounts SET password_hash = %s, must_change = %s, password_changed_at = now(),"
        " failed_count = 0, locked_until = NULL WHERE username = %s RETURNING 1",
        (password_hash, must_change, username),
    )
    if await cur.fetchone() is None:
        raise NotFound(f"account {username} not found")
    keep = credential_digest(keep_token) if keep_token else b""
    await conn.execute(
        "DELETE FROM account_sessions WHERE username = %s AND token_sha256 <> %s", (username, keep)
    )


async def set_disabled(conn: AsyncConnection[Any], username: str, disabled: bool) -> None:
    """Disable (and end every session now) or enable (and clear any lock-out) an account."""
    if disabled:
        sql = "UPDATE accounts SET disabled_at = COALESCE(disabled_at, now())"
    else:
        sql = "UPDATE accounts SET disabled_at = NULL, failed_count = 0, locked_until = NULL"
    sql += " WHERE username = %s RETURNING 1"
    cur = await conn.execute(sql, (username,))
    if await cur.fetchone() is None:
        raise NotFound(f"account {username} not found")
    if disabled:
        await conn.execute("DELETE FROM account_sessions WHERE username = %s", (username,))


async def unlink_sso(conn: AsyncConnection[Any], username: str) -> bool:
    """Forget the single sign-on identity bound to the account (migration 0019); the next sign-in
    by the provider binds again. Whether one was bound."""
    cur = await conn.execute(
        "SELECT sso_identity IS NOT NULL FROM accounts WHERE username = %s FOR UPDATE", (username,)
    )
    row = await cur.fetchone()
    if row is None:
        raise NotFound(f"account {username} not found")
    await conn.execute("UPDATE accounts SET sso_identity = NULL WHERE username = %s", (username,))
    return bool(row[0])


@dataclass(frozen=True, slots=True)
class LoginRow:
    password_hash: str
    disabled: bool
    locked_for_s: float | None  # seconds left of a lock-out, None when not locked
    must_change: bool


async def login_row(conn: AsyncConnection[Any], username: str) -> LoginRow | None:
    cur = await conn.execute(
        "SELECT password_hash, disabled_at IS NOT NULL, extract(epoch FROM locked_until - now()), must_change"
        " FROM accounts WHERE username = %s",
        (username,),
    )
    row = await cur.fetchone()
    if row is None:
        return None
    left = float(row[2]) if row[2] is not None and row[2] > 0 else None
    return LoginRow(row[0], row[1], left, row[3])


async def record_failure(conn: AsyncConnection[Any], username: str, policy: LockoutPolicy) -> float | None:
    """Count a wrong password (atomically: concurrent guesses each count); returns the seconds of
    the lock-out this failure started, if it started one."""
    cur = await conn.execute(
        "UPDATE accounts SET failed_count = failed_count + 1 WHERE username = %s RETURNING failed_count",
        (username,),
    )
    row = await cur.fetchone()
    if row is None:
        return None
    lock = policy.lock_for(row[0])
    if lock is not None:
        await conn.execute(
            "UPDATE accounts SET locked_until = now() + %s WHERE username = %s",
            (timedelta(seconds=lock), username),
        )
    return lock


async def record_success(conn: AsyncConnection[Any], username: str, new_hash: str | None) -> None:
    await conn.execute(
        "UPDATE accounts SET failed_count = 0, locked_until = NULL, last_login_at = now(),"
        " password_hash = COALESCE(%s, password_hash) WHERE username = %s",
        (new_hash, username),
    )


# --- sessions -------------------------------------------------------------------------------------


async def open_session(conn: AsyncConnection[Any], username: str, ttl: timedelta) -> tuple[str, datetime]:
    """A `vt_…` session token for the account, valid for `ttl`; expired ones are swept on the way."""
    await conn.execute("DELETE FROM account_sessions WHERE expires_at < now() - interval '1 day'")
    token = f"{TOKEN_PREFIX}{secrets.token_urlsafe(32)}"
    cur = await conn.execute(
        "INSERT INTO account_sessions (token_sha256, username, expires_at) VALUES (%s, %s, now() + %s)"
        " RETURNING expires_at",
        (credential_digest(token), username, ttl),
    )
    row = await cur.fetchone()
    assert row is not None
    expires: datetime = row[0]
    return token, expires


async def identify_session(conn: AsyncConnection[Any], token: str) -> Account | None:
    """The live, enabled account behind a session token, or None. A bureau account carries its
    staff member's current name."""
    if _TOKEN.match(token) is None:
        return None
    cur = await conn.execute(
        "SELECT a.username, COALESCE(s.name, a.display_name), a.role, a.staff_id, a.enterprise_id"
        " FROM account_sessions t JOIN accounts a USING (username) LEFT JOIN staff s USING (staff_id)"
        " WHERE t.token_sha256 = %s AND t.expires_at > now() AND a.disabled_at IS NULL",
        (credential_digest(token),),
    )
    row = await cur.fetchone()
    return Account(*row) if row is not None else None


async def end_session(conn: AsyncConnection[Any], token: str) -> bool:
    """Sign out one account session now; False if it was not live."""
    if _TOKEN.match(token) is None:
        return False
    cur = await conn.execute(
        "DELETE FROM account_sessions WHERE token_sha256 = %s RETURNING 1", (credential_digest(token),)
    )
    return await cur.fetchone() is not None
