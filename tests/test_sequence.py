"""RGB-D sequences: folder layouts, pose files, odometry against PyBullet's true poses, fusion, moving objects."""

import dataclasses
import json

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.spatial.transform import Rotation

from lyra_sim import DynamicGaussianWorld, GaussianWorld
from lyra_sim.camera import Camera
from lyra_sim.capture.odometry import TrackingLostError, estimate_poses
from lyra_sim.capture.pipeline import reconstruct_sequence
from lyra_sim.inputs.images import InputError
from lyra_sim.inputs.sequence import (
    interpolate_poses,
    read_sequence,
    read_tum_trajectory,
    sequence_from_arrays,
    write_tum_trajectory,
)
from lyra_sim.rendering import render
from lyra_sim.synthetic.captures import render_capture, write_capture


@pytest.fixture(scope="module")
def walk_capture():
    """The first 30 frames (1.5 m) of the 100-frame, 5 m loop through the furnished room; 320x240, noisy depth."""
    return render_capture(num_frames=100, width=320, height=240, seed=1, walk_kind="loop", only_first=30)


@pytest.fixture(scope="module")
def moving_capture():
    return render_capture(num_frames=24, width=240, height=180, moving_object=True, seed=2)


def _ate(estimated: np.ndarray, true: np.ndarray) -> np.ndarray:
    rel = np.linalg.inv(true[0]) @ true
    return np.linalg.norm(estimated[:, :3, 3] - rel[:, :3, 3], axis=1)


@pytest.mark.parametrize("layout", ["tum", "plain"])
def test_folder_layouts_round_trip(tmp_path, walk_capture, layout):
    cap = dataclasses.replace(walk_capture, rgb=walk_capture.rgb[:9], depth=walk_capture.depth[:9],
                              timestamps=walk_capture.timestamps[:9], cam_to_world=walk_capture.cam_to_world[:9])
    write_capture(cap, tmp_path, layout=layout)
    poses = tmp_path / ("groundtruth.txt" if layout == "tum" else "poses.json")
    seq = read_sequence(tmp_path, poses=poses, every=3)
    assert len(seq) == 3 and seq.info["layout"] == layout
    np.testing.assert_allclose(seq.K, cap.K)
    np.testing.assert_allclose(seq.timestamps, cap.timestamps[::3], atol=1e-6)
    step = 1 / 5000 if layout == "tum" else 1 / 1000  # the layouts' depth units
    np.testing.assert_allclose(seq.frames[1].depth, cap.depth[3], atol=step / 2 + 1e-6)
    np.testing.assert_array_equal((seq.frames[1].rgb * 255).round().astype(np.uint8), cap.rgb[3])
    np.testing.assert_allclose(seq.poses, cap.cam_to_world[::3], atol=1e-5)


def test_tum_pairs_by_nearest_timestamp_and_interpolates_poses(tmp_path):
    (tmp_path / "rgb").mkdir()
    (tmp_path / "depth").mkdir()
    rgb_lines, depth_lines = [], []
    for i, t in enumerate([1.00, 1.10, 1.20]):
        Image.fromarray(np.full((8, 8, 3), 40 * i, np.uint8)).save(tmp_path / "rgb" / f"{t:.2f}.png")
        Image.fromarray(np.full((8, 8), 5000 * (i + 1), np.uint16)).save(tmp_path / "depth" / f"{t + 0.01:.2f}.png")
        rgb_lines.append(f"{t:.2f} rgb/{t:.2f}.png")
        depth_lines.append(f"{t + 0.01:.2f} depth/{t + 0.01:.2f}.png")
    (tmp_path / "rgb.txt").write_text("# colour\n" + "\n".join(rgb_lines) + "\n")
    (tmp_path / "depth.txt").write_text("\n".join(depth_lines[::-1]) + "\n")  # order must not matter
    (tmp_path / "intrinsics.json").write_text(json.dumps({"fx": 8, "fy": 8, "cx": 4, "cy": 4}))
    # Trajectory: at t=1.0 identity, at t=1.2 moved 0.2 m along x and turned 90 degrees about z.
    end = np.eye(4)
    end[:3, :3] = Rotation.from_euler("z", 90, degrees=True).as_matrix()
    end[:3, 3] = [0.2, 0, 0]
    write_tum_trajectory(tmp_path / "traj.txt", [1.0, 1.2], [np.eye(4), end])
    seq = read_sequence(tmp_path, poses=tmp_path / "traj.txt")
    assert [f.depth[0, 0] for f in seq.frames] == pytest.approx([1.0, 2.0, 3.0])  # 5000 units per metre
    middle = seq.frames[1].cam_to_world
    np.testing.assert_allclose(middle[:3, 3], [0.1, 0, 0], atol=1e-9)
    euler = Rotation.from_matrix(middle[:3, :3]).as_euler("xyz", degrees=True)
    np.testing.assert_allclose(euler, [0, 0, 45], atol=1e-6)
    times, mats = read_tum_trajectory(tmp_path / "traj.txt")
    np.testing.assert_allclose(mats[1], end, atol=1e-6)
    with pytest.raises(InputError, match="outside the trajectory"):
        interpolate_poses(times, mats, np.array([2.0]), name="traj")


def test_bad_sequences_fail_naming_the_input(tmp_path, walk_capture):
    with pytest.raises(InputError, match="not an RGB-D sequence folder"):
        read_sequence(tmp_path)
    write_capture(walk_capture, tmp_path / "seq", layout="plain", poses=False)
    (tmp_path / "seq" / "intrinsics.json").unlink()
    with pytest.raises(InputError, match="no intrinsics given"):
        read_sequence(tmp_path / "seq")
    K = walk_capture.K
    (tmp_path / "poses.json").write_text(json.dumps([np.eye(4).tolist()] * 3))
    with pytest.raises(InputError, match="3 poses for 30 frames"):
        read_sequence(tmp_path / "seq", intrinsics=K, poses=tmp_path / "poses.json")
    (tmp_path / "seq" / "depth" / "0004.png").unlink()
    with pytest.raises(InputError, match="without a colour/depth partner: 0004"):
        read_sequence(tmp_path / "seq", intrinsics=K)


def test_odometry_tracks_the_true_trajectory(walk_capture):
    poses, report = estimate_poses(walk_capture.sequence(), progress=False)
    err = _ate(poses, walk_capture.cam_to_world)
    walked = np.linalg.norm(np.diff(walk_capture.cam_to_world[:, :3, 3], axis=0), axis=1).sum()
    assert walked > 1.0
    assert err.max() < 0.03, err  # 3 cm after a 1.5 m walk, from noisy depth
    assert min(report.overlap) > 0.5 and report.summary()["pairs"] == 29


def test_tracking_lost_is_refused(walk_capture):
    rgbs = [walk_capture.rgb[0], walk_capture.rgb[1], np.zeros_like(walk_capture.rgb[0])]
    depths = [walk_capture.depth[0], walk_capture.depth[1], np.full_like(walk_capture.depth[0], 0.3)]
    depths[2][:4] = 0.0
    seq = sequence_from_arrays(rgbs, depths, walk_capture.K)
    with pytest.raises(TrackingLostError, match=r"tracking lost between frames 000001 .* and 000002"):
        estimate_poses(seq, progress=False)


@pytest.fixture(scope="module")
def fused_walk(walk_capture):
    seq = walk_capture.sequence(with_poses=True)
    seq.frames = seq.frames[::2]
    return seq, reconstruct_sequence(seq, voxel_size=0.03, progress=False, dynamic=False)


def test_fused_world_renders_the_views_it_was_made_from(walk_capture, fused_walk):
    seq, result = fused_walk
    world = result.world
    assert isinstance(world, GaussianWorld) and world.frame == "opencv" and world.meters_per_unit == 1.0
    assert world.info["pose_source"] == "given" and world.info["frames"] == 15
    # One surfel per surface element: far fewer Gaussians than the pixels that went in.
    assert len(world) < 0.1 * 15 * 320 * 240
    h, w = 240, 320
    errors = []
    for i, min_coverage in ((0, 0.85), (7, 0.98), (14, 0.85)):  # the ends of the walk saw their edges once
        frame = 2 * i
        world_to_cam = torch.from_numpy(np.linalg.inv(result.cam_to_world[i])).float()
        cam = Camera(torch.tensor(seq.K, dtype=torch.float32), world_to_cam, w, h)
        with torch.no_grad():
            out = render(world, cam, background=(0, 0, 0))
        depth = walk_capture.depth[frame]
        valid = depth > 0
        rendered = out.depth.numpy()
        covered = (out.alpha.numpy() > 0.5) & valid
        assert covered.sum() / valid.sum() > min_coverage
        errors.append(np.median(np.abs(rendered[covered] - depth[covered])))
        rgb_err = np.abs(out.rgb.numpy()[covered] - walk_capture.rgb[frame][covered] / 255.0).mean()
        assert rgb_err < 0.08
    assert max(errors) < 0.03, errors


def test_view_dependent_colour_is_fitted_from_several_views():
    """A white wall seen from the left is bright, from the right dark: degree-1 SH keeps the difference."""
    h, w = 60, 80
    K = np.array([[60.0, 0, 40], [0, 60.0, 30], [0, 0, 1]])
    rgbs, depths, poses = [], [], []
    for x in np.linspace(-0.6, 0.6, 7):
        pose = np.eye(4)
        pose[0, 3] = x
        rgbs.append(np.full((h, w, 3), 0.5 - 0.5 * x, np.float32))  # brighter seen from the left
        depths.append(np.full((h, w), 2.013, np.float32))
        poses.append(pose)
    seq = sequence_from_arrays(rgbs, depths, K, cam_to_world=poses)
    flat = reconstruct_sequence(seq, voxel_size=0.05, sh_degree=0, progress=False).world
    shiny = reconstruct_sequence(seq, voxel_size=0.05, sh_degree=1, progress=False).world
    assert flat.sh_degree == 0 and shiny.sh_degree == 1
    centre = (shiny.means[:, :2].norm(dim=1) < 0.2)
    from lyra_sim.sh import eval_sh_colors

    sh = shiny.sh[centre]
    from_left = eval_sh_colors(sh, shiny.means[centre] - torch.tensor([-0.6, 0.0, 0.0]))
    from_right = eval_sh_colors(sh, shiny.means[centre] - torch.tensor([0.6, 0.0, 0.0]))
    assert (from_left - from_right).mean() > 0.3  # true difference 0.6, shrunk a little by the ridge


def test_moving_object_becomes_a_dynamic_world(moving_capture, tmp_path, capsys):
    from lyra_sim.cli import main
    from lyra_sim.io import load_world

    cap = moving_capture
    write_capture(cap, tmp_path / "capture", layout="tum")
    assert main(["generate", str(tmp_path / "capture"), "--poses", str(tmp_path / "capture" / "groundtruth.txt"),
                 "--voxel-size", "0.03", "-o", str(tmp_path / "scene.ply")]) == 0
    printed = capsys.readouterr().out
    assert "moving parts: 3 keyframes at t = 0.00, 0.53, 1.07 s" in printed
    assert "the world is dynamic and .ply holds one static world: wrote .safetensors instead" in printed
    world = load_world(tmp_path / "scene.safetensors")  # the native format keeps the keyframes
    assert isinstance(world, DynamicGaussianWorld)
    np.testing.assert_allclose(world.times, cap.timestamps[[0, 8, 16]], atol=1e-6)  # 15 fps, one every 0.5 s
    ref = np.linalg.inv(cap.cam_to_world[0])  # world frame = first camera's OpenCV frame
    half = np.array(cap.object_half_extents)
    static = len(world.worlds[0]) - world.worlds[0].info["moving_gaussians"]
    for t, keyframe in zip(world.times, world.worlds, strict=True):
        k = round(t * 15)
        moving = keyframe.means[static:].double().numpy()
        assert len(moving) > 50
        in_sim = moving @ np.linalg.inv(ref)[:3, :3].T + np.linalg.inv(ref)[:3, 3]
        offset = np.abs(in_sim - cap.object_positions[k])
        inside = (offset <= half + 0.03).all(axis=1)
        assert inside.mean() > 0.9, (t, inside.mean())
    # The static background no longer holds the box anywhere along its path.
    to_sim = np.linalg.inv(ref)
    background = world.worlds[0].means[:static].double().numpy() @ to_sim[:3, :3].T + to_sim[:3, 3]
    path_lo = cap.object_positions.min(axis=0) - half + [0.03, 0.03, 0.03]
    path_hi = cap.object_positions.max(axis=0) + half - [0.03, 0.03, 0.0]
    on_path = ((background > path_lo) & (background < path_hi)).all(axis=1)
    assert on_path.sum() < 60, on_path.sum()  # a box left in the background would leave hundreds per position


def test_fused_world_works_like_any_other(tmp_path, fused_walk):
    """make_env aligns it (floor at z = 0, camera height from the floor) and USD export takes it."""
    import lyra_sim
    from lyra_sim.io import load_world, save_world
    from usd_exporters import export_world

    _, result = fused_walk
    path = save_world(result.world, tmp_path / "walk.ply")
    assert len(load_world(path)) == len(result.world)
    env = lyra_sim.make_env(str(path), image_size=(48, 36), max_episode_steps=5)
    try:
        obs, _ = env.reset(seed=0)
        assert obs["rgb"].shape == (36, 48, 3)
        height = env.unwrapped.scene.world.info["alignment"]["camera_height_m"]
        assert height == pytest.approx(1.3, abs=0.1)  # the sim camera walked 1.25-1.35 m above the floor
    finally:
        env.close()
    usd = export_world(result.world, tmp_path / "walk.usda")
    assert usd.exists() and "ParticleField3DGaussianSplat" in usd.read_text()


def test_cli_generates_a_world_from_a_sequence_folder(tmp_path, walk_capture, capsys):
    from lyra_sim.cli import main

    write_capture(walk_capture, tmp_path / "capture", layout="plain", poses=False)
    out = tmp_path / "capture.ply"
    assert main(["generate", str(tmp_path / "capture"), "--every", "2", "--max-frames", "8", "--voxel-size", "0.04",
                 "--static", "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "8 frames; poses: open3d RGB-D odometry + pose graph" in printed
    assert f"Gaussians to {out}" in printed and out.exists()
    assert main(["generate", str(tmp_path / "missing"), "-o", str(out)]) == 2
