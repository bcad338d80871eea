import numpy as np
import pytest
import torch
from PIL import Image

from lyra_sim import Camera, generate_world, render
from lyra_sim.inputs import InputError
from lyra_sim.rotations import quat_to_rotmat
from lyra_sim.single_view import ground_backdrop_prior
from lyra_sim.single_view.lift import unreliable_edges

W, H = 40, 30
K = np.array([[50.0, 0, 20], [0, 50.0, 15], [0, 0, 1]])


def plane_depth(normal, offset):
    """z-depth of the plane n.X = offset seen through K's pixel centres."""
    v, u = np.meshgrid(np.arange(H) + 0.5, np.arange(W) + 0.5, indexing="ij")
    rays = np.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], np.ones_like(u)], -1)
    return (offset / (rays @ np.asarray(normal))).astype(np.float32)


def test_lift_reproduces_a_tilted_plane():
    normal = np.array([0.2, -0.3, -1.0])
    normal /= np.linalg.norm(normal)
    depth = plane_depth(normal, -2.0)  # plane 2 m from the camera, facing it
    rgb = np.full((H, W, 3), 128, np.uint8)
    world = generate_world(rgb, depth=depth, intrinsics=K, complete=False)
    assert len(world) == W * H  # one surfel per pixel
    pts = world.means.double().numpy()
    np.testing.assert_allclose(pts @ normal, -2.0, atol=1e-5)  # every centre lies on the plane
    surfel_normals = quat_to_rotmat(world.quats)[:, :, 2].double().numpy()  # thin axis
    assert np.abs(surfel_normals @ normal).min() > 0.999
    assert world.meters_per_unit == 1.0 and world.info["depth_source"] == "given" and world.info["metric"]


def test_lift_renders_back_the_input_view():
    v, u = np.meshgrid(np.linspace(0, 1, H), np.linspace(0, 1, W), indexing="ij")
    rgb = (np.stack([u, v, 0.5 + 0.4 * np.sin(6 * u) * np.cos(4 * v)], -1) * 255).astype(np.uint8)  # smooth image
    world = generate_world(rgb, depth=np.full((H, W), 3.0, np.float32), intrinsics=K)
    with torch.no_grad():
        out = render(world, Camera(K, np.eye(4), W, H), backend="cpu", background=(1, 1, 1))
    inner = (slice(3, -3), slice(3, -3))
    assert out.alpha[inner].min() > 0.99
    psnr = -10 * torch.log10(((out.rgb[inner] - torch.from_numpy(rgb[inner] / 255.0).float()) ** 2).mean())
    assert psnr > 30


def test_depth_jump_is_split_not_dropped():
    depth = np.full((H, W), 2.0, np.float32)
    depth[:, W // 2 :] = 4.0
    edges = unreliable_edges(depth)  # the old rule (still used to mask teacher losses) flags the jump
    assert edges[:, W // 2 - 2 : W // 2 + 2].all() and not edges[:, : W // 2 - 3].any()
    world = generate_world(np.zeros((H, W, 3), np.uint8), depth=depth, intrinsics=K, complete=False)
    assert len(world) == H * W  # every pixel kept, each side on its own surface
    z = world.means[:, 2].numpy()
    np.testing.assert_allclose(np.sort(np.unique(z.round(4))), [2.0, 4.0])


def test_prior_depth_is_reported_and_geometric():
    world = generate_world(np.zeros((H, W, 3), np.uint8), fov_deg=70, camera_height=1.5, pitch_deg=20)
    assert world.info["depth_source"] == "prior" and world.info["metric"] is False
    assert world.meters_per_unit is None
    prior = ground_backdrop_prior(K, W, H, camera_height=1.5, pitch_deg=0.0, backdrop=6.0)
    # with no pitch, floor pixels below the horizon satisfy y_cam = 1.5 exactly
    v = np.arange(H) + 0.5
    y = (v[:, None] - K[1, 2]) / K[1, 1] * prior
    floor = (v[:, None] > K[1, 2] + 12.6) & np.ones((1, W), bool)  # rows that hit the floor before 6 m
    np.testing.assert_allclose(y[floor], 1.5, rtol=1e-5)
    np.testing.assert_allclose(prior[~floor & (v[:, None] < K[1, 2])], 6.0, rtol=1e-5)  # backdrop


def test_depth_png_in_millimetres(tmp_path):
    Image.fromarray(np.full((H, W), 2500, np.uint16)).save(tmp_path / "d.png")
    Image.fromarray(np.zeros((H, W, 3), np.uint8)).save(tmp_path / "c.png")
    world = generate_world(tmp_path / "c.png", depth=tmp_path / "d.png", intrinsics=K)
    assert world.means[:, 2].numpy() == pytest.approx(2.5)


@pytest.mark.parametrize(
    ("image", "depth", "message"),
    [
        (np.zeros((H, W, 2), np.uint8), None, "image"),
        (np.zeros((H, W, 3), np.int64), None, "dtype"),
        (np.full((H, W, 3), 2.0), None, r"\[0, 1\]"),
        (np.zeros((H, W, 3), np.uint8), np.ones((H + 1, W)), "depth is"),
        (np.zeros((H, W, 3), np.uint8), np.zeros((H, W)), "no valid"),
        ("/nonexistent/image.png", None, "no such file"),
    ],
)
def test_bad_inputs_are_named(image, depth, message):
    with pytest.raises(InputError, match=message):
        generate_world(image, depth=depth, intrinsics=K)


def test_bad_intrinsics():
    with pytest.raises(InputError, match="intrinsics"):
        generate_world(np.zeros((H, W, 3), np.uint8), depth=np.ones((H, W)), intrinsics=np.eye(2))
    with pytest.raises(InputError, match="principal point"):
        generate_world(
            np.zeros((H, W, 3), np.uint8), depth=np.ones((H, W)), intrinsics={"fx": 5, "fy": 5, "cx": 900, "cy": 1}
        )
