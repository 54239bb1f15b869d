"""API keys for `rollbook serve`: the keys file, hashing, and what a key may see.

A key is scoped to one school (a school policy's id) or to one trust (the `school.trust` of the
school policies it covers). The file holds only the sha256 of each key, never the key itself:

    keys:
      - name: mason-moor-mis          # shown in the log of every request made with the key
        sha256: 3b1f...               # hex sha256 of the key's UTF-8 text
        school: mason-moor            # or  trust: The St Mary's Partnership

`rollbook serve --new-key NAME --school ID` makes a key and prints its entry.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

KEY_PREFIX = "rbk_"
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


class KeysFileError(Exception):
    """The keys file cannot be used; the message says which entry and why."""


@dataclass(frozen=True)
class ApiKey:
    """One entry of the keys file: who the key belongs to and what it may reach."""

    name: str
    sha256: str
    school: str | None = None
    trust: str | None = None

    def covers(self, school_id: str, trust: str | None) -> bool:
        """Whether this key may read and write the data of `school_id` (whose policy names `trust`)."""
        if self.school is not None:
            return school_id == self.school
        return trust is not None and trust == self.trust

    @property
    def scope(self) -> dict:
        return {"school": self.school} if self.school is not None else {"trust": self.trust}


def hash_key(key: str) -> str:
    """The hex sha256 of a key, as written in the keys file."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def new_key() -> str:
    """A fresh random key (256 bits), prefixed so a leaked key is recognisable in a scan."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def key_entry(name: str, digest: str, school: str | None, trust: str | None) -> str:
    """One keys-file entry as YAML text (to append under `keys:`)."""
    import json

    scope = f"school: {json.dumps(school)}" if school is not None else f"trust: {json.dumps(trust)}"
    return f"  - name: {json.dumps(name)}\n    sha256: {digest}\n    {scope}\n"


def load_keys(path: Path | str) -> dict[str, ApiKey]:
    """Read a keys file. Returns the keys by their sha256; raises KeysFileError for any problem."""
    import yaml

    shown = str(path)
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8-sig"))
    except OSError as exc:
        raise KeysFileError(f"cannot read the keys file {shown}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise KeysFileError(f"the keys file {shown} is not valid YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(data, dict) or not isinstance(data.get("keys"), list):
        raise KeysFileError(f"the keys file {shown} must hold a `keys:` list (see docs/service.md)")
    keys: dict[str, ApiKey] = {}
    names: set[str] = set()
    for n, entry in enumerate(data["keys"], start=1):
        where = f"{shown}: key {n}"
        if not isinstance(entry, dict):
            raise KeysFileError(f"{where}: each key is a mapping with name, sha256 and school or trust")
        unknown = set(entry) - {"name", "sha256", "school", "trust"}
        if unknown:
            raise KeysFileError(f"{where}: unknown field {sorted(unknown)[0]!r} (fields: name, sha256, school, trust)")
        name, digest = entry.get("name"), entry.get("sha256")
        if not isinstance(name, str) or not name.strip():
            raise KeysFileError(f"{where}: `name` is required (it identifies the key in the log)")
        if name in names:
            raise KeysFileError(f"{where}: the name {name!r} is used twice")
        if not isinstance(digest, str) or not _HEX64.match(digest.lower()):
            raise KeysFileError(f"{where} ({name}): `sha256` must be 64 hex digits (make one with `rollbook serve --new-key`)")
        school, trust = entry.get("school"), entry.get("trust")
        if (school is None) == (trust is None):
            raise KeysFileError(f"{where} ({name}): give exactly one of `school` (a school policy id) or `trust`")
        for label, value in (("school", school), ("trust", trust)):
            if value is not None and (not isinstance(value, str) or not value.strip()):
                raise KeysFileError(f"{where} ({name}): `{label}` must be non-empty text")
        digest = digest.lower()
        if digest in keys:
            raise KeysFileError(f"{where} ({name}): the same key hash is listed for {keys[digest].name!r}")
        names.add(name)
        keys[digest] = ApiKey(name, digest, school, trust)
    if not keys:
        raise KeysFileError(f"the keys file {shown} lists no keys; no request could be authorised")
    return keys


def authenticate(header: str | None, keys: dict[str, ApiKey]) -> ApiKey | None:
    """The key presented as `Authorization: Bearer <key>`, or None when missing or unknown."""
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return keys.get(hash_key(token.strip()))
