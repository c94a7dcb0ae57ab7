"""Ports for local services: never handed out twice, never from the kernel's ephemeral range."""
import random
import socket

from backbone.local import services
from backbone.local.services import free_port


def test_no_port_is_handed_out_twice_even_after_it_is_released():
    ports = [free_port() for _ in range(3000)]  # each is bound and released before the next
    assert len(set(ports)) == len(ports)


def test_ports_come_from_below_the_ephemeral_range():
    low, _ = services._ephemeral_range()
    assert all(p < low for p in (free_port() for _ in range(200)))


def test_a_port_something_listens_on_is_skipped(monkeypatch):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        taken = busy.getsockname()[1]
        busy.listen()
        real = random.Random(7)
        calls = []

        class Fixed:  # the first pick is the busy port, later picks are ordinary
            def randint(self, a, b):
                calls.append(a)
                return taken if len(calls) == 1 else real.randint(a, b)

        monkeypatch.setattr(services.random, "SystemRandom", Fixed)
        assert free_port() != taken
        assert len(calls) >= 2
