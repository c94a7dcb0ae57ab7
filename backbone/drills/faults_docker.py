"""Fault injection on the docker platform, through the Docker Engine API (docker-py).

Each fault is one engine call on the container by name: the engine resolves names itself, so
there is no lookup round trip, and an unknown name comes back as a 404 that we turn into a
FaultError naming the container. A partition disconnects the container from the stack's
network (the one `infra/docker` creates); healing connects it again.
"""
from __future__ import annotations

from typing import Any

from .faults import FAULTS, ApiFaults, FaultError

STOP_TIMEOUT_S = 10  # what `docker stop` waits before it escalates to SIGKILL


class DockerFaults(ApiFaults):
    platform = "docker"

    @classmethod
    def create(cls, options) -> DockerFaults:
        return cls(network=options.network)

    def __init__(self, network: str | None = None, client: Any = None):
        """`client` is a docker.DockerClient (built from the environment when not given);
        `network` is the stack's network, needed only for the partition fault."""
        self.network = network
        self._client = client

    @property
    def api(self):
        # the low-level client: one HTTP request per fault, no container lookup first
        if self._client is None:
            import docker  # only the docker platform needs the SDK
            self._client = docker.from_env()
        return self._client.api

    def inject(self, member: str, fault: str) -> None:
        _known(fault)
        if fault == "kill":
            self._call(member, fault, lambda: self.api.kill(member, signal="SIGKILL"))
        elif fault == "stop":
            self._call(member, fault, lambda: self.api.stop(member, timeout=STOP_TIMEOUT_S))
        elif fault == "pause":
            self._call(member, fault, lambda: self.api.pause(member))
        else:
            network = self._network()
            self._call(member, fault, lambda: self.api.disconnect_container_from_network(member, network))

    def heal(self, member: str, fault: str) -> None:
        _known(fault)
        if fault in ("kill", "stop"):
            self._call(member, "start", lambda: self.api.start(member))
        elif fault == "pause":
            self._call(member, "unpause", lambda: self.api.unpause(member))
        else:
            network = self._network()
            self._call(member, "reconnect", lambda: self.api.connect_container_to_network(member, network))

    def _network(self) -> str:
        if not self.network:
            raise FaultError("partition on docker needs the stack's network name (DockerFaults(network=...))")
        return self.network

    def _call(self, member: str, action: str, call) -> None:
        from docker.errors import APIError, DockerException, NotFound

        try:
            call()
        except NotFound as exc:
            where = f" or network {self.network!r}" if action in ("partition", "reconnect") else ""
            raise FaultError(f"{action} {member}: no such container {member!r}{where} "
                             f"({_explanation(exc)})") from None
        except APIError as exc:
            raise FaultError(f"{action} {member}: the Docker engine refused: {_explanation(exc)}") from None
        except DockerException as exc:  # no engine reachable, bad DOCKER_HOST, ...
            raise FaultError(f"{action} {member}: {exc}") from None


def _known(fault: str) -> None:
    if fault not in FAULTS:
        raise FaultError(f"unknown fault {fault!r} (one of {', '.join(FAULTS)})")


def _explanation(exc) -> str:
    return str(getattr(exc, "explanation", None) or exc)
