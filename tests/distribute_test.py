"""Strategy set-up for pods without a pod: TPU addresses, shared paths, bounded waits, profiler services,
and the cadence of the outer loop."""

import json
import socket
import time

import pytest
import tensorflow as tf

from trm_tf import distribute
from trm_tf.actions import crossed, steps_to_next_stop


def test_slice_addresses_reach_tpu_cluster_resolver_as_one_string():
    # A Python list of addresses makes TF's TPU client raise NotImplementedError("Using multiple TPUs in a
    # single session ..."); the comma-separated string is what TF splits itself. No network is used.
    r = distribute.tpu_resolver("grpc://10.0.0.1:8470,grpc://10.0.0.2:8470")
    assert r.cluster_spec().as_dict() == {"worker": ["10.0.0.1:8470", "10.0.0.2:8470"]}
    assert r.master() == "grpc://10.0.0.1:8470"
    with pytest.raises(NotImplementedError):
        tf.distribute.cluster_resolver.TPUClusterResolver(
            tpu=["grpc://10.0.0.1:8470", "grpc://10.0.0.2:8470"]
        )


def test_remote_hosts_need_gs_paths():
    distribute.require_shared_paths(
        "local", workdir="/tmp/run", data_dir="~/tfds"
    )  # one host: fine
    distribute.require_shared_paths("", workdir="/tmp/run")
    distribute.require_shared_paths(
        "grpc://a:8470,grpc://b:8470", workdir="gs://b/r", data_dir="gs://b/t"
    )
    with pytest.raises(distribute.SharedPathError) as e:
        distribute.require_shared_paths("my-v4-32", workdir="gs://b/r", data_dir="/home/me/tfds")
    msg = str(e.value)
    assert "\n" not in msg and "data_dir=/home/me/tfds" in msg and "workdir" not in msg


def _closed_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_wait_for_peers_is_bounded_and_names_the_missing_host():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    up = f"127.0.0.1:{listener.getsockname()[1]}"
    down = f"127.0.0.1:{_closed_port()}"
    try:
        distribute.wait_for_peers([up], 1.0)
        t0 = time.monotonic()
        with pytest.raises(distribute.PeerTimeoutError) as e:
            distribute.wait_for_peers([up, down], 1.5)
        assert time.monotonic() - t0 < 10
    finally:
        listener.close()
    msg = str(e.value)
    assert down in msg and up not in msg and "\n" not in msg


def test_profiler_services_of_a_loopback_cluster(monkeypatch):
    cluster = {"worker": ["127.0.0.1:2000", "127.0.0.1:2001"]}
    monkeypatch.setenv(
        "TF_CONFIG", json.dumps({"cluster": cluster, "task": {"type": "worker", "index": 1}})
    )
    assert distribute.profiler_services(9000) == ["grpc://127.0.0.1:9000", "grpc://127.0.0.1:9001"]
    assert distribute.own_profiler_port(9000) == 9001
    assert distribute.profiler_services(0) == []
    cluster = {"worker": ["10.0.0.1:2000", "10.0.0.2:2000"]}  # separate machines: one port
    monkeypatch.setenv(
        "TF_CONFIG", json.dumps({"cluster": cluster, "task": {"type": "worker", "index": 0}})
    )
    assert distribute.profiler_services(9000) == ["grpc://10.0.0.1:9000", "grpc://10.0.0.2:9000"]
    monkeypatch.delenv("TF_CONFIG")
    assert distribute.profiler_services(9000) == []


def test_cadence_fires_on_boundary_crossings():
    assert crossed(5, 10, 10) and crossed(7, 12, 10) and not crossed(10, 15, 10)
    assert crossed(37, 40, 20) and not crossed(0, 0, 10) and not crossed(3, 9, 0)
    # Loops end at the next cadence point, a profiler start or a stage boundary, and at the end.
    assert steps_to_next_stop(0, 40, 5, [10, 10], (7,)) == 5
    assert steps_to_next_stop(5, 40, 5, [10], (7,)) == 2
    assert steps_to_next_stop(7, 40, 5, [10], (7,)) == 3
    assert steps_to_next_stop(12, 40, 100, [10, 25], ()) == 8
    assert steps_to_next_stop(38, 40, 100, [], ()) == 2


def test_start_up_memory_check_refuses_what_cannot_fit_a_chip():
    """The start-up check on TPU (one line naming the fixes) and its log-only behaviour elsewhere."""
    import types

    from configs import paper_arc1
    from trm_tf import memory
    from trm_tf.train import memory_check

    config = paper_arc1.get_config()
    spec = types.SimpleNamespace(seq_len=900, num_puzzle_identifiers=876_406)
    v4_8 = types.SimpleNamespace(num_replicas_in_sync=4)  # per-chip batch 192
    with pytest.raises(memory.MemoryBudgetError) as e:
        memory_check(config, spec, v4_8, on_tpu=True)
    assert "\n" not in str(e.value) and "remat" in str(e.value) and "v4-32" in str(e.value)
    memory_check(config, spec, v4_8, on_tpu=False)  # CPU/GPU: logged, never refused
    memory_check(config, spec, types.SimpleNamespace(num_replicas_in_sync=16), on_tpu=True)  # v4-32
    config.runtime.memory_check = False
    memory_check(config, spec, v4_8, on_tpu=True)
