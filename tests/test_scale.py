"""The data engine on local Ray: same shard bytes as the single-process path, resumable, localhost only."""

import os

import psutil
import pytest

from lyra_sim.cli import main
from lyra_sim.train.data_engine import make_dataset

ray = pytest.importorskip("ray")


@pytest.fixture(scope="session")
def local_ray():
    """One local Ray for the whole session (start-up costs seconds), two CPUs, bound to 127.0.0.1."""
    from lyra_sim.scale import init_ray

    yield init_ray(workers=2)
    ray.shutdown()


def _shards(root):
    return {p.name: p.read_bytes() for p in sorted(root.glob("scene_*.safetensors"))}


def test_make_dataset_on_ray_matches_single_process_bytes(tmp_path, local_ray):
    kwargs = dict(num_scenes=3, held_out=1, width=32, height=32, frames=9, seed=7, progress=False)
    make_dataset(tmp_path / "single", workers=1, **kwargs)
    assert main(["make-dataset", str(tmp_path / "ray"), "--scenes", "3", "--held-out", "1", "--width", "32",
                 "--height", "32", "--seed", "7", "--workers", "2"]) == 0  # fmt: skip
    single, parallel = _shards(tmp_path / "single"), _shards(tmp_path / "ray")
    assert list(single) == ["scene_00000.safetensors", "scene_00001.safetensors", "scene_00002.safetensors"]
    assert single == parallel
    assert (tmp_path / "ray" / "manifest.json").read_text() == (tmp_path / "single" / "manifest.json").read_text()
    # Resumable: a lost shard is remade (identically) and the others are not touched.
    (tmp_path / "ray" / "scene_00001.safetensors").unlink()
    kept = (tmp_path / "ray" / "scene_00000.safetensors").stat().st_mtime_ns
    make_dataset(tmp_path / "ray", workers=2, **kwargs)
    assert _shards(tmp_path / "ray") == single
    assert (tmp_path / "ray" / "scene_00000.safetensors").stat().st_mtime_ns == kept
    assert not list((tmp_path / "ray").glob(".*.tmp*"))  # no temporary files left behind


def test_local_ray_listens_on_localhost_only(local_ray):
    node_pids = {os.getpid()} | {c.pid for c in psutil.Process().children(recursive=True)}
    connections = psutil.net_connections(kind="inet")
    listening = [c for c in connections if c.status == psutil.CONN_LISTEN and c.pid in node_pids]
    assert listening, "Ray's processes should be listening on some port"
    addresses = {c.laddr.ip for c in listening}
    assert addresses <= {"127.0.0.1", "::1"}, addresses
    assert local_ray.get_runtime_context().gcs_address.startswith("127.0.0.1:")
