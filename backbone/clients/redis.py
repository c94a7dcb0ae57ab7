"""Redis clients made from the contract: the current master, through Sentinel when the
deployment has one."""
from __future__ import annotations

import redis
from redis.sentinel import Sentinel

from ..contract import RedisEndpoint


def redis_client(ep: RedisEndpoint, timeout_s: float) -> redis.Redis:
    """A client for the current master: via Sentinel in sentinel mode, else direct."""
    if ep.mode == "sentinel":
        sentinel = Sentinel([(s.host, s.port) for s in ep.sentinels], socket_timeout=timeout_s,
                            socket_connect_timeout=timeout_s)
        return sentinel.master_for(ep.master_name, socket_timeout=timeout_s, socket_connect_timeout=timeout_s,
                                   password=ep.password.get_secret_value() if ep.password else None,
                                   username=ep.username, db=ep.db, ssl=ep.tls)
    return redis.Redis.from_url(ep.connection_url(), socket_timeout=timeout_s,
                                socket_connect_timeout=timeout_s, retry_on_timeout=False)
