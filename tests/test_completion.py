"""Worlds without holes: depth fill, layered lift, completion of unseen surfaces, the ``observed`` flag."""

import numpy as np
import pytest
import torch

from lyra_sim import Camera, GaussianWorld, generate_world, render
from lyra_sim.camera import look_at_matrix
from lyra_sim.generate import tint_completed
from lyra_sim.io import load_world, save_world
from lyra_sim.rotations import quat_to_rotmat
from lyra_sim.single_view.completion import CompletionOptions, far_backdrop
from lyra_sim.single_view.depth_fill import fill_depth
from lyra_sim.single_view.layers import split_layers
from lyra_sim.single_view.planes import FloorFrame
from lyra_sim.single_view.surfels import surfel_world

W, H = 128, 96
K = np.array([[100.0, 0, W / 2], [0, 100.0, H / 2], [0, 0, 1]])
EYE, TARGET = np.array([0.0, 0.0, 1.2]), np.array([3.0, 0.0, 0.0])
BOX_LO, BOX_HI = np.array([2.0, -0.3, 0.0]), np.array([2.6, 0.3, 0.5])
WALL_X = 4.5


def box_on_floor():
    """Ray-cast RGB (H,W,3) and z-depth of a red box on a checkered floor before a wall (z up), camera 1.2 m
    high, and the camera's world_to_cam (OpenCV)."""
    w2c = look_at_matrix(EYE, TARGET, up=(0, 0, 1)).double().numpy()
    v, u = np.meshgrid(np.arange(H) + 0.5, np.arange(W) + 0.5, indexing="ij")
    rays_cam = np.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], np.ones_like(u)], -1)  # z = 1
    rays = rays_cam @ w2c[:3, :3]  # world directions whose parameter t is the z-depth
    with np.errstate(divide="ignore", invalid="ignore"):
        t_floor = np.where(rays[..., 2] < 0, -EYE[2] / rays[..., 2], np.inf)
        t_wall = np.where(rays[..., 0] > 0, (WALL_X - EYE[0]) / rays[..., 0], np.inf)
        t0 = (BOX_LO - EYE) / rays
        t1 = (BOX_HI - EYE) / rays
    t_near = np.nanmax(np.minimum(t0, t1), axis=-1)
    t_far = np.nanmin(np.maximum(t0, t1), axis=-1)
    t_box = np.where((t_near <= t_far) & (t_near > 0), t_near, np.inf)
    depth = np.minimum(np.minimum(t_floor, t_wall), t_box)
    hit = EYE + rays * depth[..., None]
    checker = ((np.floor(hit[..., 0] / 0.5) + np.floor(hit[..., 1] / 0.5)) % 2)[..., None]
    rgb = np.where(checker > 0, [0.75, 0.75, 0.7], [0.45, 0.5, 0.55])
    rgb = np.where((t_wall < t_floor)[..., None], [0.7, 0.65, 0.55], rgb)
    rgb = np.where((t_box < np.minimum(t_floor, t_wall))[..., None], [0.8, 0.2, 0.15], rgb)
    return rgb.astype(np.float32), depth.astype(np.float32), w2c


def to_world(world: GaussianWorld, w2c: np.ndarray) -> np.ndarray:
    """Gaussian centres in the z-up scene frame."""
    c2w = np.linalg.inv(w2c)
    return world.means.double().numpy() @ c2w[:3, :3].T + c2w[:3, 3]


@pytest.fixture(scope="module")
def box_scene():
    rgb, depth, w2c = box_on_floor()
    return rgb, depth, w2c, generate_world(rgb, depth=depth, intrinsics=K)


def test_box_gets_a_back_and_the_floor_behind_it_is_filled(box_scene):
    _, _, w2c, world = box_scene
    assert world.info["completion"]["enabled"] and (~world.observed).any()
    # The floor hidden behind the box (x 2.65-3.2, |y| < 0.25), seen from straight above: completed floor
    # Gaussians (z = 0) cover all of it.
    completed = world.subset(~world.observed)
    floor = completed.subset(torch.from_numpy(np.abs(to_world(completed, w2c)[:, 2]) < 0.02))
    top_w2c = look_at_matrix([2.9, 0.0, 3.0], [2.9, 0.0, 0.0], up=(1, 0, 0)).double().numpy()
    top = Camera(torch.from_numpy(K).float(), torch.from_numpy(top_w2c @ np.linalg.inv(w2c)).float(), W, H)
    with torch.no_grad():
        alpha = render(floor, top).alpha.reshape(H, W).numpy()
    corners = np.array([[x, y, 0.0] for x in (2.65, 3.2) for y in (-0.25, 0.25)]) @ top_w2c[:3, :3].T + top_w2c[:3, 3]
    uv = corners[:, :2] / corners[:, 2:] * K[0, 0] + K[:2, 2]
    (u0, v0), (u1, v1) = np.floor(uv.min(0)).astype(int), np.ceil(uv.max(0)).astype(int)
    assert (alpha[v0:v1, u0:u1] > 0.5).mean() > 0.98
    # Side view at box height: the box's side face is covered (a solid), not only its paper-thin front.
    side_w2c = look_at_matrix([2.3, -2.5, 0.25], [2.3, 0.0, 0.25], up=(0, 0, 1)).double().numpy()
    camera = Camera(torch.from_numpy(K).float(), torch.from_numpy(side_w2c @ np.linalg.inv(w2c)).float(), W, H)
    corners = np.array([[x, -0.3, z] for x in (2.05, 2.55) for z in (0.05, 0.45)])
    cam = corners @ side_w2c[:3, :3].T + side_w2c[:3, 3]
    uv = cam[:, :2] / cam[:, 2:] * K[0, 0] + K[:2, 2]
    u0, v0 = np.floor(uv.min(0)).astype(int)
    u1, v1 = np.ceil(uv.max(0)).astype(int)

    def side_coverage(w: GaussianWorld) -> float:
        with torch.no_grad():
            alpha = render(w, camera).alpha.reshape(H, W).numpy()
        return float((alpha[v0:v1, u0:u1] > 0.5).mean())

    assert side_coverage(world) > 0.9
    assert side_coverage(world.observed_only()) < 0.6  # without the back the box is a shell seen from the side


def test_input_view_is_reproduced(box_scene):
    rgb, _, _, world = box_scene
    with torch.no_grad():
        out = render(world, Camera(torch.from_numpy(K).float(), torch.eye(4), W, H), background=(1, 1, 1))
    assert out.alpha.min() > 0.5  # alpha everywhere
    psnr = -10 * torch.log10(((out.rgb.reshape(H, W, 3) - torch.from_numpy(rgb)) ** 2).mean())
    assert psnr > 30


def test_layer_split_leaves_no_gaussian_across_a_jump():
    depth = np.full((H, W), 2.0, np.float32)
    depth[:, W // 2 :] = 4.0
    layers = split_layers(depth)
    assert layers.jump_u[:, W // 2 - 1].all() and layers.jump_u.sum() == H and not layers.jump_v.any()
    assert layers.near_edge[:, W // 2 - 1].all() and layers.far_edge[:, W // 2].all()
    world = generate_world(np.full((H, W, 3), 0.5, np.float32), depth=depth, intrinsics=K, complete=False)
    assert len(world) == H * W
    rot = quat_to_rotmat(world.quats).double().numpy()
    cov = np.einsum("nij,nj,nkj->nik", rot, world.scales.double().numpy() ** 2, rot)
    reach_z = 3 * np.sqrt(cov[:, 2, 2])  # 3-sigma extent along the view axis
    assert reach_z.max() < 0.1  # the gap is 2 m: nothing reaches across it
    normals = rot[:, :, 2]
    assert np.abs(normals[:, 2]).min() > 0.99  # both sides face the camera, even next to the jump


def test_grazing_floor_is_one_layer():
    """Inverse depth is affine on a plane, so a floor seen at a grazing angle has no jumps at any resolution."""
    w2c = look_at_matrix(EYE, [30.0, 0.0, 0.0], up=(0, 0, 1)).double().numpy()
    v, u = np.meshgrid(np.arange(H) + 0.5, np.arange(W) + 0.5, indexing="ij")
    rays = np.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], np.ones_like(u)], -1) @ w2c[:3, :3]
    below = rays[..., 2] < -1e-3
    depth = np.where(below, -EYE[2] / np.where(below, rays[..., 2], -1.0), 50.0).astype(np.float32)
    layers = split_layers(depth[below.all(axis=1)])
    assert not layers.jump_u.any() and not layers.jump_v.any()


def test_missing_depth_is_filled_from_the_matching_surface():
    rng = np.random.default_rng(0)
    depth = np.full((H, W), 2.0, np.float32)
    depth[:, W // 2 :] = 4.0
    rgb = np.zeros((H, W, 3), np.float32)
    rgb[:, W // 2 :] = 1.0  # the far surface is white, the near one black
    holes = rng.random((H, W)) < 0.1
    holes[:, W // 2 - 3 : W // 2 + 3] = True  # a whole band at the edge, as a sensor's shadow
    filled = fill_depth(np.where(holes, 0.0, depth), rgb)
    np.testing.assert_allclose(filled, depth, rtol=0.02)


def test_observed_flags_survive_files_and_world_operations(tmp_path, box_scene):
    world = box_scene[3].subset(slice(0, None, 7))
    flags = world.observed.clone()
    assert flags.any() and (~flags).any()
    for suffix in (".safetensors", ".ply", ".usda"):
        loaded = load_world(save_world(world, tmp_path / f"w{suffix}"))
        assert torch.equal(loaded.observed, flags), suffix
    moved = world.transformed(rotation=torch.eye(3), translation=[1.0, 2.0, 3.0])
    assert torch.equal(moved.observed, flags)
    assert torch.equal(GaussianWorld.concatenate([world, moved]).observed, torch.cat([flags, flags]))
    assert torch.equal(world.subset(torch.arange(5)).observed, flags[:5])
    assert world.observed_only().observed.all() and len(world.observed_only()) == int(flags.sum())
    plain = world.observed_only()  # files of fully observed worlds carry no flag and read back all True
    assert load_world(save_world(plain, tmp_path / "plain.ply")).observed.all()


def test_tint_marks_completed_regions_only(box_scene):
    world = box_scene[3]
    tinted = tint_completed(world, color=(1.0, 0.0, 1.0), strength=1.0)
    assert torch.equal(tinted.sh[world.observed], world.sh[world.observed])
    assert torch.allclose(tinted.rgb[~world.observed], torch.tensor([1.0, 0.0, 1.0]))


def test_completion_off_adds_nothing_but_keeps_every_pixel(box_scene):
    rgb, depth, _, _ = box_scene
    world = generate_world(rgb, depth=depth, intrinsics=K, complete=False)
    assert world.observed.all() and len(world) == H * W and world.info["completion"] == {"enabled": False}


def test_relative_depth_model_end_to_end(tmp_path):
    """A tiny randomly initialised Depth Anything, saved with save_pretrained (no download), drives the lift."""
    transformers = pytest.importorskip("transformers")
    backbone = transformers.Dinov2Config(image_size=56, patch_size=14, hidden_size=32, num_hidden_layers=4,
                                         num_attention_heads=2, intermediate_size=64, out_indices=[1, 2, 3, 4],
                                         reshape_hidden_states=False, initializer_range=0.1)
    config = transformers.DepthAnythingConfig(backbone_config=backbone, reassemble_hidden_size=32,
                                              neck_hidden_sizes=[8, 16, 32, 32], fusion_hidden_size=16,
                                              head_hidden_size=8, initializer_range=0.1)
    torch.manual_seed(0)
    model = transformers.DepthAnythingForDepthEstimation(config).eval()
    with torch.no_grad():  # random weights predict ~0 everywhere: lift the head so its output varies and is > 0
        model.head.conv2.bias.fill_(0.5)
        model.head.conv3.bias.fill_(0.5)
    model.save_pretrained(tmp_path / "tiny-depth-anything")
    processor = transformers.DPTImageProcessor(size={"height": 56, "width": 56}, keep_aspect_ratio=False,
                                               do_pad=False)
    processor.save_pretrained(tmp_path / "tiny-depth-anything")
    rgb = np.random.default_rng(0).random((30, 40, 3)).astype(np.float32)
    world = generate_world(rgb, depth_model=tmp_path / "tiny-depth-anything", complete=False)
    assert world.info["depth_source"].startswith("model:") and world.info["metric"] is False
    assert len(world) == 30 * 40 and world.meters_per_unit is None
    # Independently: the model's disparity, resized to the image; depth must fall as disparity rises.
    with torch.no_grad():
        pred = model(**processor(images=(rgb * 255).round().astype(np.uint8), return_tensors="pt")).predicted_depth
    pred = torch.nn.functional.interpolate(pred[:, None], size=(30, 40), mode="bicubic", align_corners=False)
    disparity = pred[0, 0].numpy().ravel()
    z = world.means[:, 2].numpy()
    order = np.argsort(disparity)
    valid = disparity[order] > np.percentile(disparity, 2)  # below the 1st percentile: no depth (filled)
    assert np.all(np.diff(z[order][valid]) <= 1e-4 * z.max())
    assert np.median(z) == pytest.approx(1.0, rel=0.05)


def test_cli_says_flat_prior_and_turns_completion_off(tmp_path, capsys):
    from PIL import Image

    from lyra_sim.cli import main

    Image.fromarray((box_on_floor()[0] * 255).astype(np.uint8)).save(tmp_path / "photo.png")
    assert main(["generate", str(tmp_path / "photo.png"), "-o", str(tmp_path / "w.ply")]) == 0
    out = capsys.readouterr().out
    assert "FLAT PRIOR" in out and "--depth-model DIR" in out and "completion:" in out
    assert out.count("FLAT PRIOR") == 1 and out.count("completion:") == 1  # each said once
    assert main(["generate", str(tmp_path / "photo.png"), "--no-complete", "-o", str(tmp_path / "o.ply")]) == 0
    assert "completion: off" in capsys.readouterr().out
    assert load_world(tmp_path / "o.ply").observed.all() and not load_world(tmp_path / "w.ply").observed.all()


def test_prepare_scene_warns_about_the_flat_prior():
    import lyra_sim.envs.scene as scene_module
    from lyra_sim.single_view.depth_sources import FlatPriorWarning

    with pytest.warns(FlatPriorWarning, match="FLAT PRIOR"):
        world, views = scene_module._world_from_source(box_on_floor()[0], None, None)
    assert world.info["depth_source"] == "prior" and views == []


def _robot_views(world, w2c, headings=8, pitch_deg=0.0, size=(64, 48)):
    """Robot-height (0.2 m) cameras at the input camera's foot in ``headings`` directions (OpenCV frame of the
    input camera, as the world is), ``pitch_deg`` up."""
    c2w = np.linalg.inv(w2c)
    cams = []
    for k in range(headings):
        yaw = 2 * np.pi * k / headings
        pitch = np.radians(pitch_deg)
        eye = np.array([EYE[0], EYE[1], 0.2])
        target = eye + np.array([np.cos(yaw) * np.cos(pitch), np.sin(yaw) * np.cos(pitch), np.sin(pitch)])
        robot_w2c = look_at_matrix(eye, target, up=(0, 0, 1)).double().numpy()
        cams.append(torch.from_numpy(robot_w2c @ c2w).float())  # world = the input camera's frame
    Kr = Camera.intrinsics_from_fov(*size, 90.0)
    return Camera(Kr.expand(headings, 3, 3), torch.stack(cams), *size)


def test_robot_views_all_around_have_no_holes(box_scene):
    """Floor, walls, seams and the far backdrop: every heading, level and looking up, is covered; without the
    backdrop and seams the sky behind the camera is empty."""
    rgb, depth, w2c, world = box_scene
    for pitch in (0.0, 30.0):
        with torch.no_grad():
            alpha = render(world, _robot_views(world, w2c, pitch_deg=pitch)).alpha
        assert ((alpha > 0.5).float().mean(dim=(1, 2)) >= 0.99).all()
    bare = generate_world(rgb, depth=depth, intrinsics=K,
                          completion=CompletionOptions(backdrop=False, seams=False))
    with torch.no_grad():
        alpha = render(bare, _robot_views(bare, w2c, pitch_deg=30.0)).alpha
    assert (alpha <= 0.5).float().mean() > 0.2


def test_backdrop_alone_covers_every_direction_down_included():
    """The backdrop by itself fills a camera at its centre looking any way, straight down too: a robot looking
    past the end of the floor (through a gap in a wall the floor stops at) sees it, not void."""
    frame = FloorFrame(np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]]), 1.2, 1.0)  # level camera
    rgb = np.concatenate([np.full((10, 20, 3), 0.8), np.full((10, 20, 3), 0.3)]).astype(np.float32)
    dome = far_backdrop(frame, 40.0, rgb)
    world = surfel_world(dome.points, dome.normals, dome.scales, dome.colors, 0.95, observed=False, metric=True)
    directions = [(0, 0, 1), (0, 0, -1), (1, 0, 0), (-1, 0, 0), (0, 1, 0), (0, -1, 0)]  # OpenCV: +y is down
    w2c = torch.stack([look_at_matrix((0.0, 0.0, 0.0), d, up=(0.0, 0.0, 1.0) if d[1] else (0.0, -1.0, 0.0)).float()
                       for d in directions])
    camera = Camera(Camera.intrinsics_from_fov(32, 24, 90.0).expand(6, 3, 3), w2c, 32, 24)
    with torch.no_grad():
        result = render(world, camera, background=(0.0, 1.0, 0.0))
    assert ((result.alpha > 0.5).float().mean(dim=(1, 2)) >= 0.99).all()
    np.testing.assert_allclose(result.rgb[4].mean(dim=(0, 1)).numpy(), 0.3, atol=0.03)  # down: the bottom rows
    np.testing.assert_allclose(result.rgb[5].mean(dim=(0, 1)).numpy(), 0.8, atol=0.03)  # up: the top rows


def test_backdrop_is_invented_beyond_the_floor_and_the_underlay_is_observed_behind_the_lift(box_scene):
    rgb, depth, w2c, world = box_scene
    report = world.info["completion"]
    assert report["backdrop_gaussians"] > 500 and report["underlay_gaussians"] > 1000
    points = to_world(world, w2c)
    foot = np.array([EYE[0], EYE[1], 0.0])
    radius = report["floor"]["radius"]
    far = np.linalg.norm(points - foot, axis=1) > 1.01 * radius
    assert far.sum() == report["backdrop_gaussians"] and not world.observed[torch.from_numpy(far)].any()
    above = points[far, 2] > 0
    assert 0.4 < above.mean() < 0.6  # a sphere: over the floor and under it
    colours = world.rgb[torch.from_numpy(far)].numpy()
    rows = max(1, round(0.1 * H))
    sky, ground = np.median(rgb[:rows].reshape(-1, 3), axis=0), np.median(rgb[-rows:].reshape(-1, 3), axis=0)
    assert np.abs(sky - ground).max() > 0.05  # the wall above, the floor below: two colours
    assert np.abs(colours[above] - sky).max() < 0.02 and np.abs(colours[~above] - ground).max() < 0.02
    lift = W * H
    extra = world.subset(torch.arange(len(world)) >= lift)
    underlay = extra.subset(extra.observed).means.double().numpy()  # the completion's observed part
    assert len(underlay) == report["underlay_gaussians"]
    u = np.floor(K[0, 0] * underlay[:, 0] / underlay[:, 2] + K[0, 2]).astype(int).clip(0, W - 1)
    v = np.floor(K[1, 1] * underlay[:, 1] / underlay[:, 2] + K[1, 2]).astype(int).clip(0, H - 1)
    behind = underlay[:, 2] - depth[v, u]
    assert (behind > 0).all() and np.median(behind / depth[v, u]) < 0.1  # just behind what the camera saw


def test_object_back_colours_are_low_passed_within_each_object():
    """Stripes on an object's front become its mean colour on the back; a touching object's colour never leaks."""
    from lyra_sim.single_view.backs import object_colour_field

    rgb = np.zeros((40, 60, 3))
    labels = np.zeros((40, 60), int)
    labels[5:35, 5:30], labels[5:35, 30:55] = 1, 2
    rgb[..., 0] = np.where((np.arange(60) // 2) % 2 == 0, 0.9, 0.1)[None, :]  # 2-pixel stripes on object 1
    rgb[labels == 2] = [0.0, 0.0, 1.0]
    field = object_colour_field(rgb, labels, np.array([0.0, 25.0, 25.0]))
    inner = labels == 1
    assert rgb[inner, 0].std() > 0.35 and field[inner, 0].std() < 0.05
    assert field[inner, 0].mean() == pytest.approx(rgb[inner, 0].mean(), abs=0.02)
    assert np.abs(field[inner, 2]).max() < 1e-9  # no blue from object 2 next to it
    np.testing.assert_allclose(field[labels == 2], rgb[labels == 2], atol=1e-9)
    assert not field[labels == 0].any()
