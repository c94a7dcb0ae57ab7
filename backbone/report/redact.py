"""Redaction: every text backbone prints or writes passes through `Redactor.scrub`, so a
secret that slipped into a driver's error message still never reaches the output."""
from __future__ import annotations

import re
from urllib.parse import quote

MASK = "***"
# a private key in any PEM shape (PKCS#8, PKCS#1, EC, encrypted), whoever's it is
_PRIVATE_KEY = re.compile(r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----.*?(-----END [A-Z0-9 ]*PRIVATE KEY-----|\Z)", re.S)


class Redactor:
    def __init__(self, secrets: list[str] | None = None):
        variants: set[str] = set()
        for s in secrets or []:
            if s:
                variants.update({s, quote(s, safe=""), quote(s)})
        # longest first, so a URL is masked whole before the password inside it
        self._secrets = sorted((v for v in variants if len(v) >= 4), key=len, reverse=True)

    def scrub(self, text: str) -> str:
        if "PRIVATE KEY-----" in text:
            text = _PRIVATE_KEY.sub(MASK, text)
        for secret in self._secrets:
            text = text.replace(secret, MASK)
        return text
