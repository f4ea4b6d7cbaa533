"""The users of the HTTP gateway: their names, tokens, operator flag and limits.

``labspool user add NAME`` makes a user with a new random token (``secrets.token_urlsafe(32)``,
32 random bytes), shows the token once and keeps only its hash; the gateway asks
:meth:`Users.authenticate` for every request.

Where they are kept: a table of the job store (``state/labspool.sqlite3``), not a file of
their own. The store's commits are durable already (WAL, ``synchronous=FULL``), SQLite
serialises writers across processes, and a reader sees every committed change at its next
query: a user added or removed while the gateway runs counts from the gateway's next
request, with no reload, no signal and no file format, atomic replacement or lock of our
own. The gateway reads the store anyway (a user's unfinished jobs against
``queued_jobs_max``), and ``state/`` is the daemons' own folder: one file to back up and
to keep from other accounts.

The hash is SHA-256 of the token, without a salt and without a slow KDF. bcrypt, scrypt and
argon2 make each guess expensive for someone who stole the hashes, which matters for
passwords a person chose, since these are few enough to try. A token of 32 random bytes
is one of 2**256: finding it from its hash takes about 2**255 tries however fast the hash
is, and SHA-256's preimage resistance is all that is asked of it. A slow KDF would
instead make every request cost tens of milliseconds of CPU, a lever for anyone who can
send requests. A salt defeats tables computed in advance and hides that two accounts
share a password; no table covers 2**256 tokens and two independent tokens are equal with
probability 2**-256, so a salt would add a column and nothing else. A copy of the database
(a backup) therefore gives no token that works.

:meth:`Users.authenticate` always hashes the presented token and compares it with
``hmac.compare_digest``, against the user's hash or, for a name that is not a user, against
a dummy hash made at start-up: how long a refusal takes does not tell whether the name
exists. Input of the wrong shape (missing, empty, not a ``str``, over
:data:`INPUT_MAX_CHARS`, a NUL) is refused before any of that; its shape is known to
whoever sent it.

A user's limits (``queued_jobs_max``, ``job_bytes_max``, ``requests_per_s``) are their own
where ``user add`` set them, else the ``gateway:`` section's (a NULL in the table: a user
follows the configuration when it changes). What an operator may do beyond other users is
the gateway's decision; here it is one flag.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

import jsonschema

from spooler.core.errors import LabspoolError
from spooler.core.names import escaped
from spooler.core.resources import schema_path
from spooler.core.settings import Settings
from spooler.core.store import JobStore
from spooler.core.store.users import UserRows

__all__ = [
    "INPUT_MAX_CHARS",
    "LIMIT_NAMES",
    "USER_NAME_PATTERN",
    "USE_RESOLUTION_S",
    "InvalidUserName",
    "UnknownUser",
    "User",
    "UserError",
    "UserExists",
    "UserRecord",
    "Users",
    "is_valid_user_name",
]

# The gateway names its jobs file_<id>-<user>.json, from which the spooler takes the
# submitter (spooler.core.jobid: _USER, _FILE_NAMES). This pattern must stay a subset of
# jobid._USER, so that every user's job file names the user it came from: the same first
# character, the same length, and the rest without '-' (which jobid._USER allows, for the
# web front's names). tests/gateway/test_users.py checks the subset character by character.
USER_NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_.@+]{0,63}"
_USER_NAME = re.compile(USER_NAME_PATTERN)

# A name or token presented to authenticate that is longer is refused unread (a token is 43).
INPUT_MAX_CHARS = 256
# authenticate's caller records a use at most this often per user (a write per request
# would put an fsync of the store on every request).
USE_RESOLUTION_S = 60.0
# The limits a user may have of their own; each defaults to the gateway section's.
LIMIT_NAMES = ("queued_jobs_max", "job_bytes_max", "requests_per_s")

_TOKEN_BYTES = 32


class UserError(LabspoolError):
    """A user command that cannot be done (the command line exits 1)."""


class InvalidUserName(UserError):
    pass


class UserExists(UserError):
    pass


class UnknownUser(UserError):
    pass


@dataclass(frozen=True, slots=True)
class User:
    """An authenticated user with the limits that apply to them (their own or the
    defaults)."""

    name: str
    operator: bool
    queued_jobs_max: int
    job_bytes_max: int
    requests_per_s: float

    def sees(self, submitter: str | None) -> bool:
        """Whether this user may see a job of *submitter*: their own, or any for an
        operator (the gateway answers any other job exactly like an unknown one)."""
        return self.operator or submitter == self.name


@dataclass(frozen=True, slots=True)
class UserRecord:
    """A user as ``user list`` shows them: never the hash."""

    user: User
    created_at: float
    last_used_at: float | None
    own_limits: Mapping[str, int | float]  # the limits set for this user (not defaults)


def is_valid_user_name(name: object) -> bool:
    return isinstance(name, str) and _USER_NAME.fullmatch(name) is not None


def _sha256(token: str) -> str:
    # surrogatepass: any str hashes (a lone surrogate cannot match a real token)
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


# What an unknown name's token is compared with: the hash of bytes nobody knows.
_DUMMY_SHA256 = hashlib.sha256(secrets.token_bytes(_TOKEN_BYTES)).hexdigest()


def _usable(value: object) -> bool:
    return isinstance(value, str) and 0 < len(value) <= INPUT_MAX_CHARS and "\x00" not in value


@cache
def _limits_validator() -> jsonschema.protocols.Validator:
    """The configuration schema's gateway section: a user's own limits obey its ranges."""
    schema = json.loads(schema_path("config.schema.json").read_text(encoding="utf-8"))
    section = schema["properties"]["gateway"]
    subschema = {
        "type": "object",
        "properties": {name: section["properties"][name] for name in LIMIT_NAMES},
    }
    validator: jsonschema.protocols.Validator = jsonschema.Draft202012Validator(subschema)
    return validator


class Users:
    """The gateway's users in the job store *store*, with the defaults of *settings*.

    Reads (``authenticate``, ``get``, ``records``) are single queries; each change is one
    durable transaction. Like the store, use one per thread that writes."""

    def __init__(self, store: JobStore, settings: Settings) -> None:
        self._store = store
        self._defaults = settings.gateway
        self._job_bytes_ceiling = settings.limits.job_file_max_bytes
        self._recorded: dict[str, float] = {}  # name -> the last use this object wrote

    # -- the gateway's calls ---------------------------------------------------------------

    def authenticate(self, name: str | None, token: str | None) -> User | None:
        """The user *name* if *token* is theirs, else None (also for any input of the wrong
        shape). The token is hashed and compared in constant time whether or not *name* is
        a user."""
        if not (_usable(name) and _usable(token)):
            return None
        assert isinstance(name, str) and isinstance(token, str)
        row = None
        if is_valid_user_name(name):
            row = UserRows.with_token_hash(self._store.read, name)
        expected = _DUMMY_SHA256 if row is None else row[0]
        matches = hmac.compare_digest(_sha256(token), expected)
        if row is None or not matches:
            return None
        return self._record(row[1]).user

    def get(self, name: str) -> User | None:
        """The user *name* (no token asked: for the gateway's own lookups)."""
        record = self._get(name)
        return None if record is None else record.user

    def record_use(self, name: str, *, at: float | None = None) -> None:
        """Note that *name* was just authenticated (``user list`` shows it), writing at most
        once per :data:`USE_RESOLUTION_S` per user."""
        now = self._store.clock() if at is None else at
        last = self._recorded.get(name)
        if last is not None and now - last < USE_RESOLUTION_S:
            return
        with self._store.transaction() as tx:
            UserRows.used(tx, name, at=now, resolution_s=USE_RESOLUTION_S)
        self._recorded[name] = now

    # -- the command line's ----------------------------------------------------------------

    def add(
        self,
        name: str,
        *,
        operator: bool = False,
        replace: bool = False,
        queued_jobs_max: int | None = None,
        job_bytes_max: int | None = None,
        requests_per_s: float | None = None,
    ) -> tuple[User, str]:
        """Make the user *name* with a new token; returns the user and the token (which is
        not kept). With *replace* an existing user of that name is replaced, operator flag
        and limits included, and their old token stops working."""
        if not is_valid_user_name(name):
            raise InvalidUserName(
                f"{escaped(name)!r} is not a valid user name: 1 to 64 letters, digits, '_', "
                "'.', '@' or '+', starting with a letter or digit (no '-': the spooler reads "
                "the user from job file names file_<id>-<user>.json)"
            )
        own = {
            key: value
            for key, value in (
                ("queued_jobs_max", queued_jobs_max),
                ("job_bytes_max", job_bytes_max),
                ("requests_per_s", requests_per_s),
            )
            if value is not None
        }
        self._check_limits(own)
        token = secrets.token_urlsafe(_TOKEN_BYTES)
        with self._store.transaction() as tx:
            if UserRows.exists(tx, name) and not replace:
                raise UserExists(
                    f"the user {name} exists already; `labspool user add {name} --replace` "
                    "gives them a new token (the old one stops working)"
                )
            UserRows.put(
                tx,
                name,
                token_sha256=_sha256(token),
                operator=operator,
                queued_jobs_max=queued_jobs_max,
                job_bytes_max=job_bytes_max,
                requests_per_s=None if requests_per_s is None else float(requests_per_s),
            )
        self._recorded.pop(name, None)
        record = self._get(name)
        assert record is not None
        return record.user, token

    def remove(self, name: str) -> None:
        """Remove the user *name*: their token stops working at once."""
        if is_valid_user_name(name):
            with self._store.transaction() as tx:
                removed = UserRows.delete(tx, name)
            if removed:
                self._recorded.pop(name, None)
                return
        raise UnknownUser(f"there is no user {escaped(name)!r} (`labspool user list` shows them)")

    def records(self) -> list[UserRecord]:
        """Every user, by name."""
        return [self._record(row) for row in UserRows.all(self._store.read)]

    # -- helpers ---------------------------------------------------------------------------

    def _get(self, name: str) -> UserRecord | None:
        if not is_valid_user_name(name):
            return None
        row = UserRows.get(self._store.read, name)
        return None if row is None else self._record(row)

    def _record(self, row: tuple[Any, ...]) -> UserRecord:
        name, operator, queued_jobs_max, job_bytes_max, requests_per_s, created, used = row
        own = {
            key: value
            for key, value in zip(
                LIMIT_NAMES, (queued_jobs_max, job_bytes_max, requests_per_s), strict=True
            )
            if value is not None
        }
        defaults = self._defaults
        user = User(
            name=name,
            operator=bool(operator),
            queued_jobs_max=int(own.get("queued_jobs_max", defaults.queued_jobs_max)),
            job_bytes_max=int(own.get("job_bytes_max", defaults.job_bytes_max)),
            requests_per_s=float(own.get("requests_per_s", defaults.requests_per_s)),
        )
        return UserRecord(user, float(created), None if used is None else float(used), own)

    def _check_limits(self, own: dict[str, int | float]) -> None:
        """A user's own limits obey the gateway section's ranges, and a job they may send is
        one the spooler would read."""
        error = jsonschema.exceptions.best_match(_limits_validator().iter_errors(own))
        if error is not None:
            key = ".".join(str(p) for p in error.absolute_path)
            raise UserError(f"{key}: {error.message}")
        rate = own.get("requests_per_s")
        if rate is not None and not math.isfinite(rate):
            raise UserError(f"requests_per_s: {rate} is not a number of requests a second")
        size = own.get("job_bytes_max")
        if size is not None and size > self._job_bytes_ceiling:
            raise UserError(
                f"job_bytes_max: {size} is above limits.job_file_max_bytes "
                f"({self._job_bytes_ceiling}): the spooler would refuse such a job"
            )
