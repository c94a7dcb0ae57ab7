"""clients/redis: the contract's client and the by-address one carry the timeouts asked for,
and the failure sentence never repeats the driver's text."""
import socket

import pytest
import redis

from backbone.clients import redis as client
from backbone.contract import RedisEndpoint

PLANTED = "pl4nted-S3cret"


def kwargs_of(c: redis.Redis) -> dict:
    return c.connection_pool.connection_kwargs


def test_the_contract_client_takes_the_timeout_and_the_password():
    c = client.redis_client(RedisEndpoint(host="cache.example", port=6390, password=PLANTED, db=3), 1.5)
    kw = kwargs_of(c)
    assert (kw["host"], kw["port"], kw["db"], kw["password"]) == ("cache.example", 6390, 3, PLANTED)
    assert kw["socket_timeout"] == kw["socket_connect_timeout"] == 1.5


def test_a_node_client_connects_within_its_own_timeout_and_may_not_retry():
    c = client.node_client("127.0.0.1", 7000, 30, password="p", db=2, connect_timeout_s=2, retry=False)
    kw = kwargs_of(c)
    assert (kw["socket_timeout"], kw["socket_connect_timeout"], kw["db"]) == (30, 2, 2)
    assert kw["retry"].get_retries() == 0
    assert kwargs_of(client.node_client("127.0.0.1", 7000, 4))["socket_connect_timeout"] == 4


@pytest.mark.parametrize("exc, code", [
    (redis.AuthenticationError(f"invalid password {PLANTED}"), "auth_failed"),
    (redis.ResponseError(f"WRONGPASS {PLANTED}"), "auth_failed"),
    (redis.ResponseError(f"ERR unknown {PLANTED}"), "error"),
    (redis.TimeoutError(f"Timeout reading from redis://:{PLANTED}@h"), "timeout"),
    (redis.ConnectionError(f"Error 111 connecting redis://:{PLANTED}@h"), "unreachable"),
    (ConnectionRefusedError(PLANTED), "unreachable"),
])
def test_failures_are_named_without_the_drivers_text(exc, code):
    assert client.classify(exc, 2)[0] == code
    assert PLANTED not in client.describe(exc, 2)


def test_an_error_that_is_no_failure_to_reach_the_server_is_not_classified():
    assert client.classify(redis.DataError("bad argument"), 2) is None


def test_a_refused_connection_is_described_without_the_password():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    c = client.redis_client(RedisEndpoint(port=port, password=PLANTED), 1)
    with pytest.raises(redis.ConnectionError) as caught:
        c.ping()
    assert client.describe(caught.value, 1) == "cannot connect"
