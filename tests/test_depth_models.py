"""Monocular depth models on request (issue 28): tiny random Depth Anything (relative, metric) and Depth Pro built
here with ``save_pretrained`` (``lyra_sim.synthetic.tiny_depth_models``: their outputs are known in closed form),
loaded by directory and by model id from a temporary offline Hugging Face cache. Nothing here reaches a network:
the Hub is offline, or a silent / closed socket or a small Hub of our own on 127.0.0.1.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import socket
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import lyra_sim
from lyra_sim.generate.batch import generate_many
from lyra_sim.io import load_world
from lyra_sim.single_view.depth_models import DepthModelError, resolve_depth_model
from lyra_sim.single_view.depth_sources import DEPTH_MODEL_ENV, FlatPriorWarning
from lyra_sim.synthetic.tiny_depth_models import (
    COMMIT,
    FOV,
    INVERSE,
    METRIC_DEPTH,
    cache_snapshot,
    save_depth_anything,
    save_depth_pro,
)

transformers = pytest.importorskip("transformers")
huggingface_hub = pytest.importorskip("huggingface_hub")

H, W = 30, 40
METRIC_ID = "depth-anything/Depth-Anything-V2-Metric-Indoor-Small-hf"
RELATIVE_ID = "depth-anything/Depth-Anything-V2-Small-hf"
PRO_ID = "apple/DepthPro-hf"


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("depth_models")
    folders = {"metric": root / "metric", "relative": root / "relative", "pro": root / "pro"}
    save_depth_anything(folders["metric"], metric=True)
    save_depth_anything(folders["relative"], metric=False)
    save_depth_pro(folders["pro"])
    return folders


@pytest.fixture(scope="module")
def hub_cache(models, tmp_path_factory) -> Path:
    cache = tmp_path_factory.mktemp("hf_home") / "hub"
    for repo_id, key in ((METRIC_ID, "metric"), (RELATIVE_ID, "relative"), (PRO_ID, "pro")):
        cache_snapshot(cache, repo_id, models[key])
    return cache


@pytest.fixture
def offline_hub(hub_cache, monkeypatch) -> Path:
    """huggingface_hub reads HF_HUB_CACHE / HF_HUB_OFFLINE when imported: set both the variables and its constants."""
    from huggingface_hub import constants

    monkeypatch.setenv("HF_HUB_CACHE", str(hub_cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(hub_cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.delenv(DEPTH_MODEL_ENV, raising=False)
    return hub_cache


def photo(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((H, W, 3)).astype(np.float32)


def test_the_cache_layout_is_the_one_huggingface_hub_reads(hub_cache):
    scanned = {repo.repo_id: repo for repo in huggingface_hub.scan_cache_dir(hub_cache).repos}
    assert set(scanned) == {METRIC_ID, RELATIVE_ID, PRO_ID}
    revision = next(iter(scanned[PRO_ID].revisions))
    assert revision.commit_hash == COMMIT and revision.refs == frozenset({"main"})
    assert {f.file_name for f in revision.files} == {"config.json", "model.safetensors", "preprocessor_config.json",
                                                     "README.md"}


def test_metric_depth_anything_by_model_id_from_the_offline_cache(offline_hub, models):
    world = lyra_sim.generate_world(photo(), depth_model=METRIC_ID, complete=False)
    info = world.info
    assert info["depth_source"] == f"model:{METRIC_ID}" and info["metric"] is True and world.meters_per_unit == 1.0
    snapshot = offline_hub / f"models--{METRIC_ID.replace('/', '--')}" / "snapshots" / COMMIT
    assert info["depth_model"] == {"name": METRIC_ID, "path": str(snapshot), "repo_id": METRIC_ID,
                                   "revision": COMMIT, "licence": "apache-2.0"}
    assert len(world) == H * W and "depth_warning" not in info
    np.testing.assert_allclose(world.means[:, 2].numpy(), METRIC_DEPTH, rtol=1e-5)
    by_dir = lyra_sim.generate_world(photo(), depth_model=models["metric"], complete=False)  # the same files
    assert by_dir.info["depth_model"]["repo_id"] is None and by_dir.info["metric"] is True
    np.testing.assert_array_equal(by_dir.means.numpy(), world.means.numpy())


def test_relative_depth_anything_by_model_id_has_unknown_scale(offline_hub, models):
    rgb = photo(1)
    world = lyra_sim.generate_world(rgb, depth_model=RELATIVE_ID, complete=False)
    assert world.info["metric"] is False and world.meters_per_unit is None
    assert world.info["depth_model"]["revision"] == COMMIT
    # Independently: the model's own disparity through transformers' processor; depth must fall as it rises
    model = transformers.AutoModelForDepthEstimation.from_pretrained(models["relative"]).eval()
    processor = transformers.AutoImageProcessor.from_pretrained(models["relative"])
    with torch.no_grad():
        pred = model(**processor(images=(rgb * 255).round().astype(np.uint8), return_tensors="pt")).predicted_depth
    disparity = torch.nn.functional.interpolate(pred[:, None], size=(H, W), mode="bicubic",
                                                align_corners=False)[0, 0].numpy().ravel()
    order = np.argsort(disparity)
    valid = disparity[order] > np.percentile(disparity, 2)  # below the 1st percentile: no depth (filled)
    z = world.means[:, 2].numpy()[order][valid]
    assert np.all(np.diff(z) <= 1e-4 * z.max()) and z.max() > 1.05 * z.min()


def test_depth_pro_field_of_view_becomes_the_intrinsics(offline_hub):
    world = lyra_sim.generate_world(photo(), depth_model=PRO_ID, complete=False)
    focal = 0.5 * W / math.tan(math.radians(FOV / 2))
    K = np.asarray(world.info["intrinsics"])
    np.testing.assert_allclose(K, [[focal, 0, W / 2], [0, focal, H / 2], [0, 0, 1]], atol=1e-4)
    assert world.info["intrinsics_source"] == f"estimated by {PRO_ID}: {FOV:.1f} deg horizontal field of view"
    assert world.info["metric"] is True and world.meters_per_unit == 1.0
    np.testing.assert_allclose(world.means[:, 2].numpy(), focal / (W * INVERSE), rtol=1e-5)
    # Given intrinsics win, and Depth Pro's depth follows their focal length (depth = f / (W * inverse))
    given = np.array([[30.0, 0, W / 2], [0, 30.0, H / 2], [0, 0, 1]])
    world = lyra_sim.generate_world(photo(), depth_model=PRO_ID, intrinsics=given, complete=False)
    assert world.info["intrinsics_source"] == "given"
    np.testing.assert_allclose(world.means[:, 2].numpy(), 30.0 / (W * INVERSE), rtol=1e-5)
    world = lyra_sim.generate_world(photo(), depth_model=PRO_ID, fov_deg=70, complete=False)  # so does a given FOV
    np.testing.assert_allclose(world.means[:, 2].numpy(), 0.5 * W / math.tan(math.radians(35)) / (W * INVERSE),
                               rtol=1e-5)


def test_configured_model_id_is_the_default_for_generate_world_and_environments(offline_hub, monkeypatch):
    from lyra_sim.envs.scene import _world_from_source

    monkeypatch.setenv(DEPTH_MODEL_ENV, METRIC_ID)
    with warnings.catch_warnings():
        warnings.simplefilter("error", FlatPriorWarning)
        world = lyra_sim.generate_world(photo(), complete=False)
        env_world, _ = _world_from_source(photo(), None, None)  # make_env / prepare_scene's source -> world
    assert world.info["depth_source"] == env_world.info["depth_source"] == f"model:{METRIC_ID}"
    assert env_world.info["metric"] is True


def test_flat_prior_warning_points_at_the_callers_line():
    with pytest.warns(FlatPriorWarning, match="FLAT PRIOR") as caught:
        world = lyra_sim.generate_world(photo(), complete=False)
    assert [Path(w.filename) for w in caught] == [Path(__file__)]
    assert world.info["depth_source"] == "prior" and "FLAT PRIOR" in world.info["depth_warning"]
    with pytest.warns(FlatPriorWarning) as caught:
        lyra_sim.single_view.lift.generate_world(photo(), complete=False)
    assert Path(caught[0].filename) == Path(__file__)


def test_make_env_on_a_photo_warns_at_the_users_line(tmp_path, monkeypatch):
    monkeypatch.delenv(DEPTH_MODEL_ENV, raising=False)
    Image.fromarray((photo() * 255).astype(np.uint8)).save(tmp_path / "photo.png")
    with pytest.warns(FlatPriorWarning, match="FLAT PRIOR") as caught:
        env = lyra_sim.make_env(str(tmp_path / "photo.png"), image_size=(16, 12))
    env.close()
    flat = [w for w in caught if issubclass(w.category, FlatPriorWarning)]
    assert len(flat) == 1 and Path(flat[0].filename) == Path(__file__)


def test_batch_says_flat_prior_once_per_image(tmp_path, monkeypatch, capsys):
    from lyra_sim.cli import main

    monkeypatch.delenv(DEPTH_MODEL_ENV, raising=False)
    inputs = []
    for name in ("a", "b"):
        Image.fromarray((photo() * 255).astype(np.uint8)).save(tmp_path / f"{name}.png")
        inputs.append(tmp_path / f"{name}.png")
    with pytest.warns(FlatPriorWarning) as caught:
        written = generate_many(inputs, tmp_path / "lib", progress=False, image_options={"complete": False})
    assert sorted(str(w.message).split(": ")[0] for w in caught) == [str(p) for p in inputs]
    assert {Path(w.filename) for w in caught} == {Path(__file__)}
    assert all("FLAT PRIOR" in load_world(path).info["depth_warning"] for path in written)
    assert main(["generate", *map(str, inputs), "--no-complete", "-o", str(tmp_path / "cli")]) == 0
    lines = capsys.readouterr().out.splitlines()
    flat = [line for line in lines if line.startswith("warning:") and "FLAT PRIOR" in line]
    assert [line.split(": ")[1] for line in flat] == [str(p) for p in inputs]


def test_missing_model_offline_is_one_line_naming_the_fetch_command(offline_hub, tmp_path, capsys):
    from lyra_sim.cli import main

    Image.fromarray((photo() * 255).astype(np.uint8)).save(tmp_path / "photo.png")
    missing = "depth-anything/Depth-Anything-V2-Metric-Outdoor-Large-hf"
    assert main(["generate", str(tmp_path / "photo.png"), "--depth-model", missing, "-o",
                 str(tmp_path / "w.ply")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert missing in err and f"lyra-sim fetch-model {missing}" in err and "HF_HUB_OFFLINE" in err
    assert not (tmp_path / "w.ply").exists()
    assert main(["fetch-model", missing]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and missing in err and "HF_HUB_OFFLINE" in err


@pytest.mark.parametrize("server", ["silent", "closed"])
def test_an_unreachable_hub_fails_in_one_line_within_the_timeout(server, monkeypatch, tmp_path):
    """A Hub address that accepts connections and never answers (or refuses them): one error line, bounded time."""
    from huggingface_hub import constants

    import lyra_sim.single_view.depth_models as depth_models

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    if server == "silent":
        listener.listen(8)  # the kernel completes the handshake; nobody ever reads or writes
    else:
        listener.close()
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{port}")
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE",
                        f"http://127.0.0.1:{port}/{{repo_id}}/resolve/{{revision}}/{{filename}}")
    monkeypatch.setattr(depth_models, "HUB_TIMEOUT_S", 1.0)
    start = time.monotonic()
    try:
        with pytest.raises(DepthModelError) as raised:
            resolve_depth_model("someone/tiny-depth-hf")
    finally:
        listener.close()
    message = str(raised.value)
    assert "\n" not in message and "someone/tiny-depth-hf" in message
    assert "lyra-sim fetch-model someone/tiny-depth-hf" in message and "could not be reached" in message
    assert time.monotonic() - start < 20


def test_unsupported_or_unsafe_model_folders_are_one_line(tmp_path, models):
    dpt = tmp_path / "dpt"
    dpt.mkdir()
    (dpt / "config.json").write_text(json.dumps({"model_type": "dpt"}))
    with pytest.raises(DepthModelError, match=r"model type 'dpt' is not supported \(supported: Depth Anything"):
        resolve_depth_model(dpt)
    pickled = tmp_path / "pickled"
    pickled.mkdir()
    (pickled / "config.json").write_bytes((models["metric"] / "config.json").read_bytes())
    (pickled / "pytorch_model.bin").write_bytes(b"not loaded")
    with pytest.raises(DepthModelError, match=r"no \.safetensors weights"):
        resolve_depth_model(pickled)
    with pytest.raises(DepthModelError, match="not a Hugging Face model id"):
        resolve_depth_model(str(tmp_path / "no-such-folder"))


def test_cli_generate_with_a_model_id_from_the_cache(hub_cache, tmp_path):
    """The issue's 'done when' command, in a fresh process whose environment points huggingface_hub at the cache."""
    Image.fromarray((photo() * 255).astype(np.uint8)).save(tmp_path / "photo.png")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(hub_cache),
           "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[1]), os.environ.get("PYTHONPATH", "")])}
    env.pop(DEPTH_MODEL_ENV, None)
    done = subprocess.run([sys.executable, "-m", "lyra_sim.cli", "generate", str(tmp_path / "photo.png"),
                           "--depth-model", METRIC_ID, "--no-complete", "-o", str(tmp_path / "w.ply")],
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    snapshot = hub_cache / f"models--{METRIC_ID.replace('/', '--')}" / "snapshots" / COMMIT
    assert f"depth model: {METRIC_ID} (Hugging Face cache {snapshot}; licence: apache-2.0)" in done.stdout
    assert f"depth source: model:{METRIC_ID} (metric)" in done.stdout and "FLAT PRIOR" not in done.stdout
    world = load_world(tmp_path / "w.ply")
    assert world.meters_per_unit == 1.0 and world.info["depth_model"]["revision"] == COMMIT
    np.testing.assert_allclose(world.means[:, 2].numpy(), METRIC_DEPTH, rtol=1e-4)


class _MiniHub:
    """The few Hub routes that huggingface_hub's model_info, hf_hub_download and snapshot_download use, serving
    model folders on 127.0.0.1, and the paths it was asked for."""

    def __init__(self, repos: dict[str, Path]):
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.files = {repo: {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}
                      for repo, folder in repos.items()}
        self.requests: list[str] = []
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_HEAD(self):
                hub.answer(self, body=False)

            def do_GET(self):
                hub.answer(self, body=True)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def answer(self, handler, body: bool) -> None:
        path = handler.path.split("?")[0]
        self.requests.append(path)
        parts = path.strip("/").split("/")
        if parts[:2] == ["api", "models"]:
            repo, rest = "/".join(parts[2:4]), parts[4:]
            files = self.files.get(repo)
            if files is None:
                return self.send(handler, 404, b'{"error": "Repository not found"}', {"X-Error-Code": "RepoNotFound"})
            if rest[:1] == ["tree"]:
                listing = [{"type": "file", "path": name, "size": len(data), "oid": hashlib.sha1(data).hexdigest()}
                           for name, data in files.items()]
                return self.send(handler, 200, json.dumps(listing).encode(), body=body)
            info = {"id": repo, "sha": COMMIT, "siblings": [{"rfilename": name} for name in files]}
            return self.send(handler, 200, json.dumps(info).encode(), body=body)
        repo, name = "/".join(parts[:2]), parts[-1]
        data = self.files.get(repo, {}).get(name)
        if data is None or parts[2] != "resolve":
            return self.send(handler, 404, b"not found", {"X-Error-Code": "EntryNotFound"}, body=body)
        self.send(handler, 200, data, {"X-Repo-Commit": COMMIT, "ETag": f'"{hashlib.sha256(data).hexdigest()}"'},
                  body=body)

    @staticmethod
    def send(handler, status: int, data: bytes, headers: dict | None = None, body: bool = True) -> None:
        handler.send_response(status)
        for key, value in {"Content-Length": str(len(data)), **(headers or {})}.items():
            handler.send_header(key, value)
        handler.end_headers()
        if body:
            handler.wfile.write(data)

    def __enter__(self):
        import threading

        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def online_hub(models, tmp_path, monkeypatch):
    """A Hub on 127.0.0.1 serving the tiny models (and a BERT-typed one) into an empty cache, online."""
    from huggingface_hub import constants

    bert = tmp_path / "bert"
    bert.mkdir()
    (bert / "config.json").write_text(json.dumps({"model_type": "bert"}))
    (bert / "model.safetensors").write_bytes(b"never fetched")
    raw = tmp_path / "raw"  # weights for another code base, no transformers config
    raw.mkdir()
    (raw / "depth_anything_v2_vits.pth").write_bytes(b"never fetched")
    repos = {METRIC_ID: models["metric"], PRO_ID: models["pro"], "someone/bert-tiny": bert, "someone/raw": raw}
    with _MiniHub(repos) as hub:
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
        monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
        monkeypatch.setattr(constants, "AGENT_HARNESSES_PATH", str(tmp_path / "agent_harnesses.json"))
        monkeypatch.setattr(constants, "ENDPOINT", hub.url)
        monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE",
                            hub.url + "/{repo_id}/resolve/{revision}/{filename}")
        monkeypatch.setenv("HF_HUB_DISABLE_XET", "1")
        monkeypatch.delenv(DEPTH_MODEL_ENV, raising=False)
        yield hub


def test_fetch_model_downloads_into_the_cache_once_and_says_where(online_hub, tmp_path, capsys, monkeypatch):
    from huggingface_hub import constants

    from lyra_sim.cli import main

    assert main(["fetch-model", PRO_ID]) == 0
    snapshot = tmp_path / "hub" / "models--apple--DepthPro-hf" / "snapshots" / COMMIT
    out = capsys.readouterr().out.strip().splitlines()
    assert out[-1] == f"fetched {PRO_ID} (Hugging Face cache {snapshot}; licence: apache-2.0)"
    assert {p.name for p in snapshot.iterdir()} == {"config.json", "model.safetensors", "preprocessor_config.json",
                                                    "README.md"}
    online_hub.requests.clear()
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)  # reused from the cache, the Hub never asked again
    world = lyra_sim.generate_world(photo(), depth_model=PRO_ID, complete=False)
    assert online_hub.requests == [] and world.info["depth_model"]["path"] == str(snapshot)
    assert world.info["intrinsics_source"].startswith(f"estimated by {PRO_ID}")


def test_generate_world_downloads_a_named_model_on_first_use(online_hub):
    world = lyra_sim.generate_world(photo(), depth_model=METRIC_ID, complete=False)
    assert world.info["metric"] is True and world.info["depth_model"]["revision"] == COMMIT
    np.testing.assert_allclose(world.means[:, 2].numpy(), METRIC_DEPTH, rtol=1e-5)
    assert any(path.endswith("/model.safetensors") for path in online_hub.requests)
    online_hub.requests.clear()
    lyra_sim.generate_world(photo(), depth_model=METRIC_ID, complete=False)
    assert online_hub.requests == []  # downloaded once, then reused


def test_fetch_refuses_unknown_unsupported_and_configless_models_before_downloading_weights(online_hub):
    from lyra_sim.single_view.depth_models import fetch_depth_model

    with pytest.raises(DepthModelError, match="someone/bert-tiny: model type 'bert' is not supported"):
        fetch_depth_model("someone/bert-tiny")
    assert not any(path.endswith(".safetensors") for path in online_hub.requests)
    with pytest.raises(DepthModelError, match="no such model on the Hugging Face Hub"):
        fetch_depth_model("nobody/nothing-hf")
    with pytest.raises(DepthModelError, match=r"someone/raw: not a transformers model \(no config.json"):
        fetch_depth_model("someone/raw")
    assert not any(path.endswith(".pth") for path in online_hub.requests)


def test_cli_batch_with_a_configured_model_names_it_once_and_no_flat_prior(offline_hub, tmp_path, monkeypatch,
                                                                           capsys):
    from lyra_sim.cli import main

    inputs = []
    for name in ("a", "b"):
        Image.fromarray((photo() * 255).astype(np.uint8)).save(tmp_path / f"{name}.png")
        inputs.append(str(tmp_path / f"{name}.png"))
    monkeypatch.setenv(DEPTH_MODEL_ENV, METRIC_ID)
    assert main(["generate", *inputs, "--no-complete", "-o", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert out.count(f"depth model: {METRIC_ID} (Hugging Face cache ") == 1 and "FLAT PRIOR" not in out
    for name in ("a", "b"):
        world = load_world(tmp_path / "out" / f"{name}.ply")
        assert world.info["depth_source"] == f"model:{METRIC_ID}" and world.meters_per_unit == 1.0


def test_make_env_without_arguments_uses_the_configured_model(offline_hub, tmp_path, monkeypatch):
    """The tiny Depth Pro sees one wall straight ahead: a world with no floor, which alignment refuses in one line;
    the flat prior (the same photo without the variable) has a floor and makes an env (test above)."""
    from lyra_sim.world import WorldError

    Image.fromarray((photo() * 255).astype(np.uint8)).save(tmp_path / "photo.png")
    monkeypatch.setenv(DEPTH_MODEL_ENV, PRO_ID)
    with warnings.catch_warnings():
        warnings.simplefilter("error", FlatPriorWarning)
        with pytest.raises(WorldError, match=r"no plane within .* below the camera"):
            lyra_sim.make_env(str(tmp_path / "photo.png"), image_size=(16, 12))
