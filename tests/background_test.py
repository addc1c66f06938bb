"""The background writer: order, flush, coalescing, back-pressure, errors on the main thread, heartbeat."""

import threading
import time

import pytest

from trm_tf.background import BackgroundWriteError, BackgroundWriter


def _blocker(writer):
    """Queues a write that holds the thread until the returned event is set."""
    gate, started = threading.Event(), threading.Event()

    def hold():
        started.set()
        gate.wait(10)

    writer.submit(hold)
    assert started.wait(10)
    return gate


def test_writes_run_in_order_off_the_main_thread_and_flush_waits():
    w = BackgroundWriter()
    done, threads = [], set()

    def task(i):
        time.sleep(0.01)
        threads.add(threading.current_thread() is threading.main_thread())
        done.append(i)

    for i in range(5):
        w.submit(lambda i=i: task(i))
    w.flush()
    assert done == [0, 1, 2, 3, 4] and threads == {False}
    w.close()
    assert not w._thread.is_alive()


def test_keyed_writes_coalesce_to_the_newest():
    w = BackgroundWriter()
    gate = _blocker(w)
    written = []
    for i in range(4):
        w.submit(lambda i=i: written.append(("summary", i)), key="summary")
    w.submit(lambda: written.append(("line", 0)))
    assert w.pending() == 3  # the held write, one summary, one line
    gate.set()
    w.close()
    assert written == [("summary", 3), ("line", 0)]


def test_a_full_queue_blocks_the_caller():
    w = BackgroundWriter(max_pending=2)
    gate = _blocker(w)
    w.submit(lambda: None)
    w.submit(lambda: None)
    third = threading.Thread(target=lambda: w.submit(lambda: None))
    third.start()
    third.join(0.3)
    assert third.is_alive()  # back-pressure: waits for a free slot
    gate.set()
    third.join(10)
    assert not third.is_alive()
    w.close()


def test_an_error_is_raised_on_the_main_thread_at_the_next_flush():
    w = BackgroundWriter()
    ran = []

    def fail():
        raise OSError("bucket gone")

    w.submit(fail)
    w.submit(lambda: ran.append(1))  # later writes still run
    with pytest.raises(BackgroundWriteError, match="OSError: bucket gone") as info:
        w.flush()
    assert isinstance(info.value.__cause__, OSError) and ran == [1]
    w.flush()  # reported once
    w.submit(fail)
    with pytest.raises(BackgroundWriteError):
        w.close()


def test_heartbeat_runs_from_the_thread_at_its_cadence():
    beats = []
    fast = BackgroundWriter(
        heartbeat=lambda: beats.append(threading.current_thread()), heartbeat_every_s=0.05
    )
    time.sleep(0.4)
    fast.close()
    assert 3 <= len(beats) <= 9
    assert all(t is not threading.main_thread() for t in beats)
    slow_beats = []
    slow = BackgroundWriter(heartbeat=lambda: slow_beats.append(1))  # the default interval
    for _ in range(20):
        slow.submit(lambda: None)
    slow.close()
    assert slow_beats == []


def test_inline_mode_writes_on_the_caller():
    w = BackgroundWriter(threaded=False)
    seen = []
    w.submit(lambda: seen.append(threading.current_thread() is threading.main_thread()))
    w.flush()
    w.close()
    assert seen == [True]
