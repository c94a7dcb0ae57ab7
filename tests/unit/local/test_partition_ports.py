"""Which processes and ports are a local member's (real processes, read from /proc), and
which acknowledged writes the partitioned member answered (pure)."""
import os
import signal
import subprocess
import time

from backbone.local import partition as partition_local
from backbone.drills.live import Attempt, isolated_acks


def test_a_process_re_parented_to_init_in_the_members_session_is_the_members():
    # as a daemonised child is: its parent exits, it keeps the session the member started in
    root = subprocess.Popen(["sh", "-c", "(sleep 60 &); exec sleep 60"], start_new_session=True)
    try:
        deadline = time.monotonic() + 10
        orphan = None
        while orphan is None and time.monotonic() < deadline:
            procs = partition_local._processes()
            session = {p for p, (_, sid) in procs.items() if sid == root.pid}
            # the sleep once its parent, the subshell, has exited (picking the subshell itself raced its exit)
            orphan = next((p for p in session if p != root.pid and procs[p][0] not in session), None)
            time.sleep(0.05)
        assert orphan is not None
        assert orphan not in partition_local.process_tree(root.pid)  # what the drill used to collect
        assert orphan in partition_local.member_processes([root.pid])
    finally:
        if orphan is not None:
            os.kill(orphan, signal.SIGKILL)
        root.kill()
        root.wait()


def test_a_member_process_under_another_group_id_is_refused_naming_it():
    own = partition_local.fs_gid(os.getpid())
    sleeper = subprocess.Popen(["sleep", "60"], start_new_session=True)
    try:
        try:
            partition_local.member_ports("pg-1", own + 1, {5432}, [sleeper.pid])
        except partition_local.PartitionError as exc:
            assert str(sleeper.pid) in str(exc) and "pg-1" in str(exc)
        else:
            raise AssertionError("a process outside the member's group id was accepted")
        assert partition_local.member_ports("pg-1", own, {5432}, [sleeper.pid]) == {5432}  # assigned, listens on none
    finally:
        sleeper.kill()
        sleeper.wait()


def test_writes_the_isolated_member_answered_and_whether_they_were_read_back():
    attempts = [Attempt(0, 0.0, 0.1, True, server=5432), Attempt(1, 0.5, 0.6, True, server=5432),
                Attempt(2, 0.7, 3.0, False), Attempt(3, 3.1, 3.2, True, server=5433),
                Attempt(4, 0.8, 0.9, True, server=5432)]
    acks = isolated_acks(attempts, fault_at=0.4, lost_seqs=[4], member_ports={5432, 8008})
    assert acks["seqs"] == [1, 4] and acks["count"] == 2  # seq 0 was before the fault, seq 3 the new primary's
    assert (acks["present"], acks["lost"], acks["lost_seqs"]) == (1, 1, [4])
    assert acks["attributed"] == "by the port that answered"


def test_without_the_answering_server_every_write_acknowledged_from_the_fault_on_counts():
    # an isolated Redis master acknowledges after the Sentinels promoted another: a superset
    attempts = [Attempt(0, 0.0, 0.1, True), Attempt(1, 0.5, 0.6, True), Attempt(2, 0.7, 3.0, False),
                Attempt(3, 3.1, 3.2, True)]
    acks = isolated_acks(attempts, fault_at=0.4, lost_seqs=[1, 3], member_ports={6379})
    assert acks["seqs"] == [1, 3] and acks["lost_seqs"] == [1, 3] and acks["attributed"].startswith("by time")
