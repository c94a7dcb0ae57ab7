"""The generated secrets' form: what `python -m infra.deploy secrets` puts into a stack."""
from __future__ import annotations

import base64
import re

import pytest

from infra.generated import SECRET_KEYS, generate


@pytest.mark.parametrize("key", [k for k in SECRET_KEYS if k != "kafka_cluster_id"])
def test_passwords_are_32_alphanumerics_and_fresh_each_time(key):
    values = {generate(key) for _ in range(20)}
    assert len(values) == 20
    assert all(re.fullmatch(r"[A-Za-z0-9]{32}", v) for v in values)


def test_the_cluster_id_is_16_bytes_of_url_safe_base64_without_padding():
    cluster_id = generate("kafka_cluster_id")
    assert re.fullmatch(r"[A-Za-z0-9_-]{22}", cluster_id)
    assert len(base64.urlsafe_b64decode(cluster_id + "==")) == 16


def test_an_unknown_key_is_refused():
    with pytest.raises(KeyError):
        generate("admin_password")
