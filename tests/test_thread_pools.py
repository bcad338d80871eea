"""Process-wide worker threads (lyra_sim.thread_pools): one executor per process, made again after a fork."""

import os

import pytest

from lyra_sim.thread_pools import ProcessThreadPool


def test_one_executor_per_process_sized_on_first_use():
    sizes = []
    pool = ProcessThreadPool(lambda: sizes.append(0) or 0, "test-pool")  # 0 workers asked: at least one made
    first = pool.get()
    assert pool.get() is first and len(sizes) == 1 and first.submit(lambda: 7).result() == 7


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_gets_its_own_working_executor():
    pool = ProcessThreadPool(lambda: 1, "test-fork")
    parent = pool.get()
    assert parent.submit(lambda: 1).result() == 1  # the parent's thread exists, the child will not have it
    pid = os.fork()
    if pid == 0:  # the child: a new executor whose thread runs work (the parent's would hang here)
        child = pool.get()
        os._exit(0 if child is not parent and child.submit(lambda: 2).result(timeout=10) == 2 else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert pool.get() is parent
