"""The data engine on local Ray: same shard bytes as the single-process path, resumable, localhost only."""

import importlib.util
import os

import psutil
import pytest

from lyra_sim.cli import main
from lyra_sim.train.data_engine import make_dataset

pytestmark = pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="needs the 'scale' extra (ray)")


@pytest.fixture(scope="session")
def local_ray():
    """One local Ray for the whole session (start-up costs seconds), two CPUs, bound to 127.0.0.1.

    Ray is first imported by lyra_sim.scale, which makes a local Ray take the loopback address.
    """
    from lyra_sim.scale import init_ray

    ray = init_ray(workers=2)
    yield ray
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
    assert addresses <= {"127.0.0.1", "::1", "::ffff:127.0.0.1"}, addresses  # loopback only (IPv4, IPv6, mapped)
    assert local_ray.get_runtime_context().gcs_address.startswith("127.0.0.1:")


def test_generate_many_inputs_on_ray(tmp_path, local_ray, capsys):
    """`lyra-sim generate A B -o DIR --workers 2`: one world per input, the same bytes as in process, resumable."""
    import shutil
    from pathlib import Path

    from lyra_sim.generate.batch import generate_many

    example = Path(__file__).resolve().parent.parent / "examples" / "data" / "tabletop_rgb.png"
    inputs = [shutil.copy(example, tmp_path / "a.png"), shutil.copy(example, tmp_path / "b.png")]
    options = {"max_pixels": 80 * 60}
    single = generate_many(inputs, tmp_path / "single", workers=1, progress=False, image_options=options)
    assert main(["generate", *map(str, inputs), "--max-pixels", "4800", "--workers", "2", "-o",
                 str(tmp_path / "ray")]) == 0  # fmt: skip
    printed = capsys.readouterr().out
    assert f"wrote {tmp_path / 'ray' / 'a.ply'}" in printed and f"wrote {tmp_path / 'ray' / 'b.ply'}" in printed
    for path in single:
        assert path.read_bytes() == (tmp_path / "ray" / path.name).read_bytes()
    kept = (tmp_path / "ray" / "a.ply").stat().st_mtime_ns
    generate_many(inputs, tmp_path / "ray", workers=2, progress=False, image_options=options)  # nothing left to do
    assert (tmp_path / "ray" / "a.ply").stat().st_mtime_ns == kept
