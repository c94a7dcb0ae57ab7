"""The partition's proof on real sockets and real nftables rules (no service needed): it
holds only when every probe across the cut timed out, and it says so when one got through."""
import socket

from backbone.local import partition as partition_local
from backbone.drills.faults_local import LocalFaults

GIDS = {"m": partition_local.GID_BASE + 90, "p": partition_local.GID_BASE + 91}


def listener():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen()
    return s


def test_the_proof_fails_without_the_cut_and_holds_with_it(tmp_path):
    member, peer = listener(), listener()
    ports = {"m": {member.getsockname()[1]}, "p": {peer.getsockname()[1]}}
    table = partition_local.table_for(tmp_path)
    try:
        uncut = LocalFaults._prove("m", ["p"], ports, GIDS.get)
        assert not uncut["proven"]
        assert {(x["from"], x["to"], x["outcome"]) for x in uncut["probes"]} == {("p", "m", "connected"),
                                                                                ("m", "p", "connected")}
        partition_local.cut(table, GIDS["m"], ports["m"], {GIDS["p"]}, ports["p"])
        cut = LocalFaults._prove("m", ["p"], ports, GIDS.get)
        assert cut["proven"], cut["probes"]
        assert [(x["from"], x["port"], x["outcome"]) for x in cut["probes"]] == [
            ("p", *ports["m"], "timeout"), ("m", *ports["p"], "timeout")]
        assert cut["client_probes"] == [{"port": next(iter(ports["m"])), "outcome": "connected"}]
    finally:
        partition_local.heal(table)
        member.close()
        peer.close()
