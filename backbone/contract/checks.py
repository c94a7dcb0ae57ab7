"""Strict checks at the contract boundary: host names, identifiers and service URLs.

Every error message here is safe to print: it names what is wrong, never the value,
because a value may be (or contain) a credential.
"""
from __future__ import annotations

import ipaddress
import re
from typing import Annotated
from urllib.parse import SplitResult, unquote, urlsplit

from pydantic import AfterValidator, BeforeValidator, Field

MAX_HOST = 253  # RFC 1123 / DNS
_LABEL = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")
# PostgreSQL identifiers are at most 63 bytes; plain ASCII keeps every driver and log safe
_IDENTIFIER = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.$-]{0,62}$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
URL_HINT = "percent-encode reserved characters (@ : / ? # [ ] %) in the user name and password"


def check_host(host: str) -> str:
    """An RFC 1123 host name or an IP literal (IPv6 with or without brackets)."""
    if not isinstance(host, str) or not host:
        raise ValueError("a host name or IP address is required")
    if len(host) > MAX_HOST:
        raise ValueError(f"host is longer than {MAX_HOST} characters")
    literal = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        ipaddress.ip_address(literal)
        return host
    except ValueError:
        pass
    if host.startswith("[") or not all(_LABEL.match(label) for label in host.rstrip(".").split(".")):
        raise ValueError("not a valid host name (RFC 1123: letters, digits and '-' in dot-separated labels) "
                         "or IP address")
    return host


def check_identifier(value: str) -> str:
    if not _IDENTIFIER.match(value):
        raise ValueError("use 1-63 ASCII letters, digits, '_', '.', '$' or '-' (not starting with '.', '$' or '-')")
    return value


def check_name(value: str) -> str:
    if not _NAME.match(value):
        raise ValueError("use 1-63 ASCII letters, digits, '_', '.' or '-', starting with a letter or digit")
    return value


def no_bool(value: object) -> object:
    if isinstance(value, bool):
        raise ValueError("expected a number, got a boolean")
    return value


Host = Annotated[str, AfterValidator(check_host)]
Identifier = Annotated[str, AfterValidator(check_identifier)]
Name = Annotated[str, AfterValidator(check_name)]
Port = Annotated[int, BeforeValidator(no_bool), Field(ge=1, le=65535)]


def Count(ge: int, le: int):  # noqa: N802 - reads like a type at the use site
    """An integer within bounds; a boolean is not a number here."""
    return Annotated[int, BeforeValidator(no_bool), Field(ge=ge, le=le)]


def Seconds(le: float = 31_536_000, zero_ok: bool = False):  # noqa: N802
    """A finite, positive duration (or zero where that means "none"), at most a year
    unless said otherwise."""
    bound = {"ge": 0} if zero_ok else {"gt": 0}
    return Annotated[float, BeforeValidator(no_bool), Field(le=le, allow_inf_nan=False, **bound)]


def parse_service_url(raw: str, schemes: tuple[str, ...], multi_host: bool) -> SplitResult:
    """Split a postgresql:// or redis:// URL strictly. A password that was not
    percent-encoded shows up as a second '@', an '@' after the authority, a port that is
    not a number or a host that is not one; each is refused with a message that carries
    no part of the URL."""
    try:
        parts = urlsplit(raw)
    except ValueError:
        raise ValueError(f"not a valid URL; {URL_HINT}") from None
    scheme = parts.scheme.split("+")[0]
    if scheme not in schemes:
        raise ValueError(f"must be a {' or '.join(s + '://' for s in schemes)} URL")
    userinfo, _, hostports = parts.netloc.rpartition("@")
    if ("@" in userinfo or "[" in userinfo or "]" in userinfo or _BAD_ESCAPE.search(userinfo)
            or "@" in parts.path + parts.query + parts.fragment or not hostports):
        raise ValueError(f"not a valid URL; {URL_HINT}")
    for item in hostports.split(",") if multi_host else [hostports]:
        host, port = split_host_port(item)
        try:
            check_host(host)
        except ValueError:
            raise ValueError(f"not a valid URL (the host is not a host name or IP address); {URL_HINT}") from None
        if port and not (port.isdigit() and 1 <= int(port) <= 65535):
            raise ValueError(f"not a valid URL (the port is not a number from 1 to 65535); {URL_HINT}")
    path = unquote(parts.path.lstrip("/"))
    if scheme.startswith("redis"):
        if path and not (path.isdigit() and int(path) < 100_000):
            raise ValueError("not a valid redis URL: the path must be a database number")
    elif path:
        try:
            check_identifier(path)
        except ValueError:
            raise ValueError(f"not a valid URL (the database name is not an identifier); {URL_HINT}") from None
    return parts


def split_host_port(item: str) -> tuple[str, str]:
    if item.startswith("["):
        host, _, rest = item.partition("]")
        return host + "]", rest.removeprefix(":")
    host, _, port = item.partition(":") if item.count(":") <= 1 else (item, "", "")
    return host, port
