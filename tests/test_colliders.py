"""Colliders that match what the camera sees: median depth, floaters, TSDF, agreement, measured geometry."""

import numpy as np
import pytest
import torch

from lyra_sim import GaussianWorld
from lyra_sim.camera import Camera
from lyra_sim.physics.floaters import find_floaters
from lyra_sim.rendering import render

# ------------------------------------------------------------------------------------------------ median depth


def _axis_gaussians(depths, opacities, scale=0.2):
    """Isotropic Gaussians centred on the optical axis of a camera at the origin looking along +z."""
    n = len(depths)
    means = np.zeros((n, 3))
    means[:, 2] = depths
    return GaussianWorld.from_rgb(means, np.full((n, 3), 0.5), np.full((n, 3), scale), np.asarray(opacities, float))


def _expected_median(depths, opacities, scale, f, offset):
    """Analytic median depth at a pixel ``offset`` pixels from the Gaussians' common 2D centre: each Gaussian
    projects to an isotropic 2D Gaussian of variance (f s / z)^2 + 0.3 (gsplat's eps2d blur)."""
    trans = 1.0
    for z, o in sorted(zip(depths, opacities, strict=True)):
        var = (f * scale / z) ** 2 + 0.3
        alpha = min(0.999, o * np.exp(-0.5 * offset**2 / var))
        trans *= 1 - alpha
        if trans <= 0.5:
            return z
    return 0.0


@pytest.mark.parametrize("opacities", [(0.2, 0.5, 0.9), (0.6, 0.5, 0.9), (0.1, 0.1, 0.6), (0.1, 0.1, 0.1)])
def test_median_depth_is_where_transmittance_crosses_one_half(opacities):
    depths = (1.0, 2.0, 3.0)
    world = _axis_gaussians(depths, opacities)
    width = height = 33  # principal point 16.5 = the centre of pixel 16: the Gaussians' centre pixel
    K = torch.tensor([[40.0, 0, 16.5], [0, 40.0, 16.5], [0, 0, 1]])
    out = render(world, Camera(K, torch.eye(4), width, height), median=True)
    assert out.median_depth.shape == (height, width)
    for px in (16, 19, 22, 28):  # along the row through the centre: offsets 0, 3, 6, 12 pixels
        expected = _expected_median(depths, opacities, 0.2, 40.0, px - 16)
        assert float(out.median_depth[16, px]) == pytest.approx(expected, abs=1e-4), px
    # The expected depth blends the three: never what a surface sensor would report on this ray.
    if opacities == (0.2, 0.5, 0.9):
        assert 2.05 < float(out.depth[16, 16]) < 2.3


def test_median_depth_at_a_soft_edge_is_front_or_back_never_between():
    """A soft-edged disc 1 m in front of a wall 3 m away: expected depth smears between them at the rim,
    median depth is 1 or 3."""
    rng = np.random.default_rng(0)
    wall = np.c_[rng.uniform(-2, 2, (3000, 2)), np.full(3000, 3.0)]
    disc = np.c_[rng.uniform(-0.3, 0.3, (400, 2)), np.full(400, 1.0)]
    means = np.concatenate([wall, disc])
    scales = np.concatenate([np.full((3000, 3), 0.06), np.full((400, 3), 0.05)])
    world = GaussianWorld.from_rgb(means, np.full((3400, 3), 0.5), scales, np.full(3400, 0.7))
    out = render(world, Camera.from_fov(64, 64, 60.0), median=True)
    median, depth = out.median_depth.numpy(), out.depth.numpy()
    assert (np.abs(median - 1.0) < 0.02).sum() > 50 and (np.abs(median - 3.0) < 0.02).sum() > 500
    assert ((np.abs(median - 1.0) < 0.02) | (np.abs(median - 3.0) < 0.02)).all()
    assert ((depth > 1.2) & (depth < 2.8)).sum() > 20  # the smear median depth avoids


def test_render_without_median_gives_none():
    world = _axis_gaussians((1.0,), (0.9,))
    assert render(world, Camera.from_fov(16, 16, 60.0)).median_depth is None


# --------------------------------------------------------------------------------------------------- floaters


def test_find_floaters_marks_isolated_huge_and_faint_gaussians_only():
    rng = np.random.default_rng(1)
    n = 20_000
    floor = np.c_[rng.uniform(0, 2, (n, 2)), np.zeros(n)]  # a dense surface (spacing ~1.4 cm)
    specks = np.c_[rng.uniform(0, 2, (5, 2)), np.full(5, 1.0)] + rng.uniform(-0.5, 0.5, (5, 3))  # alone in the air
    blob = np.array([[1.0, 1.0, 0.5]])  # one huge Gaussian
    means = np.concatenate([floor, specks, blob])
    scales = np.full((len(means), 3), 0.01)
    scales[-1] = 0.8
    opacity = np.full(len(means), 0.9)
    opacity[:7] = 0.01  # faint floor Gaussians
    world = GaussianWorld.from_rgb(means, np.full((len(means), 3), 0.5), scales, opacity)
    report = find_floaters(world)
    assert report.faint == 7 and report.huge == 1 and report.isolated == 5
    expected = np.zeros(len(means), bool)
    expected[:7] = expected[n:] = True
    np.testing.assert_array_equal(report.mask, expected)
    assert len(world) == len(means)  # the world keeps them
    assert "13 of 20006" in report.as_line()


# -------------------------------------------------------------------------------------------------- agreement


def _plane_mesh(planes, shift=(0.0, 0.0, 0.0)):
    """Two triangles per parallelogram (origin, u, v, normal), moved by ``shift``."""
    vertices, faces = [], []
    for origin, u, v, _ in planes:
        base = len(vertices)
        vertices += [origin, origin + u, origin + u + v, origin + v]
        faces += [[base, base + 1, base + 2], [base, base + 2, base + 3]]
    return np.asarray(vertices) + shift, np.asarray(faces)


@pytest.fixture(scope="module")
def aligned_room_world():
    from lyra_sim.align import align_world
    from lyra_sim.synthetic.gaussian_rooms import camera_view, room_surfaces, surfels_world

    view, _ = camera_view(surfels_world(room_surfaces(), spacing=0.03))
    return align_world(view)  # the room moves by -0.3 m in x: the camera stands over the origin


def test_agreement_of_the_true_geometry_is_near_perfect(aligned_room_world):
    from lyra_sim.physics.agreement import collider_agreement
    from lyra_sim.synthetic.gaussian_rooms import room_surfaces

    vertices, faces = _plane_mesh(room_surfaces(), shift=(-0.3, 0.0, 0.0))
    report = collider_agreement(aligned_room_world, (vertices, faces))
    # Splat depth is a Gaussian's centre depth: discs of 2.4 cm radius put the picture ~2-3 cm in front of the
    # true plane (more at grazing floor rays).
    assert report.median < 0.035 and report.within > 0.85 and report.missed == 0.0
    assert report.cameras == 20 and report.rays == 20 * 160 * 120  # the room fills every view
    assert "within 5 cm" in report.as_line()
    moved = collider_agreement(aligned_room_world, (vertices + np.array([0.3, 0.3, 0.3]), faces))  # planes 0.3 m off
    assert moved.within < 0.1 and moved.median > 0.2


def test_agreement_counts_the_rays_that_a_missing_box_lets_through(aligned_room_world):
    """Without the box in the collider, exactly the rays whose first true surface is the box disagree: their
    share follows from casting the true room with and without the box (no splats involved)."""
    from lyra_sim.physics.agreement import collider_agreement, ring_cameras
    from lyra_sim.physics.raycast import cast_rays
    from lyra_sim.synthetic.gaussian_rooms import room_surfaces

    cameras = ring_cameras(aligned_room_world)
    full = _plane_mesh(room_surfaces(), shift=(-0.3, 0.0, 0.0))
    empty = _plane_mesh(room_surfaces(with_box=False), shift=(-0.3, 0.0, 0.0))
    origins, directions = (a.reshape(-1, 3).numpy().astype(np.float64) for a in cameras.rays())
    t_full, t_empty = cast_rays(*full, origins, directions), cast_rays(*empty, origins, directions)
    box_share = float((np.abs(t_full - t_empty) > 0.05).mean())
    assert box_share > 0.05  # the ring sees the box
    with_box = collider_agreement(aligned_room_world, full, cameras=cameras)
    without = collider_agreement(aligned_room_world, empty, cameras=cameras)
    assert with_box.within - without.within == pytest.approx(box_share, abs=0.03)


def test_agreement_leaves_out_the_far_backdrop_seen_past_a_missing_wall():
    """A room whose far wall is missing, closed by an invented sphere 40 m out (the completion's far backdrop):
    the rays that see the sphere are exactly those that leave the wall-less room (cast on the true planes), and
    they are left out, not counted as misses of a collider that models the room."""
    from lyra_sim.align import align_world
    from lyra_sim.physics.agreement import collider_agreement, ring_cameras
    from lyra_sim.physics.raycast import cast_rays
    from lyra_sim.synthetic.gaussian_rooms import camera_view, room_surfaces, surfels_world

    planes = [plane for i, plane in enumerate(room_surfaces()) if i != 1]  # no far wall
    room = surfels_world(planes, spacing=0.03)
    rng = np.random.default_rng(3)
    directions = rng.normal(size=(6000, 3))
    sphere = np.array([2.0, 0.0, 0.0]) + 40.0 * directions / np.linalg.norm(directions, axis=1, keepdims=True)
    backdrop = GaussianWorld.from_rgb(sphere, np.full((len(sphere), 3), 0.6), np.full((len(sphere), 3), 1.5),
                                      np.ones(len(sphere)), frame=room.frame, meters_per_unit=room.meters_per_unit)
    backdrop.observed = torch.zeros(len(backdrop), dtype=torch.bool)
    world = align_world(camera_view(GaussianWorld.concatenate([room, backdrop]))[0])
    mesh = _plane_mesh(planes, shift=(-0.3, 0.0, 0.0))
    cameras = ring_cameras(world)
    origins, rays = (a.reshape(-1, 3).numpy().astype(np.float64) for a in cameras.rays())
    leaving = float(np.isinf(cast_rays(*mesh, origins, rays)).mean())
    assert leaving > 0.1  # the ring looks out through the missing wall
    report = collider_agreement(world, mesh, cameras=cameras)
    assert report.far_field == pytest.approx(leaving, abs=0.02)
    assert report.missed < 0.03 and report.within > 0.95  # (misses: rays past the open edge, discs overhang it)
    assert 5.0 < report.reach < 20.0 and "far field" in report.as_line()


# ------------------------------------------------------------------------------------------------------- TSDF


def _tilted_plane_depth(normal, offset, K, width, height):
    """Depth (z) at the package's pixel centres (+0.5) of the plane normal . X = offset (camera frame)."""
    from lyra_sim.camera import pixel_directions

    dirs = pixel_directions(torch.from_numpy(K), height, width).numpy()
    return (offset / (dirs @ normal)).astype(np.float32)


@pytest.mark.parametrize("normal", [(1.0, 0.0, 1.0), (0.0, -1.0, 1.0)])
def test_tsdf_surface_lies_on_an_analytic_plane_with_the_packages_pixel_centres(normal):
    from lyra_sim.geometry.tsdf import DepthView, fuse_views, surface_mesh, surface_points

    normal = np.asarray(normal) / np.linalg.norm(normal)
    width, height, f = 160, 120, 100.0
    K = np.array([[f, 0, width / 2], [0, f, height / 2], [0, 0, 1.0]])
    depth = _tilted_plane_depth(normal, 1.0013, K, width, height)
    half_pixel = 0.5 / f * np.abs(normal[:2]).max()  # normal offset of a half-pixel shift at unit depth
    points, normals = surface_points(fuse_views([DepthView(depth, K, np.eye(4))], 0.008, 5.0))
    error = points @ normal - 1.0013
    assert len(points) > 5000 and abs(error.mean()) < 0.5 * half_pixel and np.median(np.abs(error)) < 0.004
    assert np.median(np.abs(normals @ normal)) > 0.98
    vertices, faces = surface_mesh(fuse_views([DepthView(depth, K, np.eye(4))], 0.008, 5.0))
    assert len(faces) > 5000 and abs((vertices @ normal - 1.0013).mean()) < 0.5 * half_pixel
    # The old capture-fusion convention (principal point shifted by half a pixel) sits half a pixel off.
    shifted = K.copy()
    shifted[:2, 2] -= 0.5
    points, _ = surface_points(fuse_views([DepthView(depth, shifted, np.eye(4))], 0.008, 5.0))
    assert abs((points @ normal - 1.0013).mean()) > 1.2 * half_pixel


def test_tsdf_of_no_depth_is_empty():
    from lyra_sim.geometry.tsdf import DepthView, fuse_views, surface_mesh, surface_points

    grid = fuse_views([DepthView(np.zeros((8, 8), np.float32), np.eye(3), np.eye(4))], 0.01, 5.0)
    assert grid is None and len(surface_points(grid)[0]) == 0 and len(surface_mesh(grid)[1]) == 0


def test_depth_view_pixels_follow_the_packages_pixel_centres():
    """A point on the ray through pixel (u, v)'s centre (u + 0.5, v + 0.5) lands in that pixel; points behind the
    camera or outside the image are not inside."""
    from lyra_sim.geometry.tsdf import DepthView

    K = np.array([[50.0, 0.0, 20.0], [0.0, 50.0, 15.0], [0.0, 0.0, 1.0]])
    world_to_cam = np.eye(4)
    world_to_cam[:3, 3] = [0.0, 0.0, 1.0]  # the camera 1 m behind the world origin, looking along +z
    view = DepthView(np.ones((30, 40), np.float32), K, world_to_cam)
    u, v, depth = 7, 22, 2.0
    on_ray = [(u + 0.5 - 20.0) / 50.0 * depth, (v + 0.5 - 15.0) / 50.0 * depth, depth - 1.0]
    points = np.array([on_ray, [0.0, 0.0, -3.0], [10.0, 0.0, 1.0]])
    z, col, row, inside = view.pixels_of(points)
    assert z[0] == pytest.approx(depth) and (col[0], row[0]) == (u, v)
    assert inside.tolist() == [True, False, False]


# ------------------------------------------------------------------- colliders of a known PyBullet scene


@pytest.fixture(scope="module")
def box_post_doorway():
    """One 320x240 RGB-D view of a 0.4 m box, a 3 cm post and a wall with a 1 m doorway, through prepare_scene;
    yields the scene, the proxy and a ray caster (true frame -> distances to proxy and true bodies)."""
    from lyra_sim.envs.scene import prepare_scene
    from lyra_sim.physics.raycast import cast_rays
    from lyra_sim.synthetic.collider_scenes import collider_scene

    truth = collider_scene("box_post_doorway")
    rgb, depth, K, cam_to_world = truth.view(320, 240)
    scene = prepare_scene((rgb, depth), intrinsics=K)
    proxy = scene.proxies[0]
    to_aligned = np.asarray(scene.world.info["alignment"]["transform"]) @ np.linalg.inv(cam_to_world)

    def cast(origin, direction):
        origin, direction = np.asarray(origin, float), np.asarray(direction, float)
        direction = direction / np.linalg.norm(direction)
        true, _, _ = truth.ray_test(origin[None], direction[None])
        o = to_aligned[:3, :3] @ origin + to_aligned[:3, 3]
        d = to_aligned[:3, :3] @ direction  # the alignment of a metric RGB-D world is rigid
        return float(cast_rays(proxy.vertices, proxy.faces, o[None], d[None])[0]), float(true[0])

    yield scene, proxy, cast
    truth.close()


def test_a_box_seen_from_one_side_is_solid_from_the_side_and_from_above(box_post_doorway):
    _, _, cast = box_post_doorway
    # The box spans x 1.8-2.2, y -0.5..-0.1, z 0-0.4; the camera looks at it from x = 0.
    for origin, direction in (((2.0, 0.8, 0.2), (0, -1, 0)), ((2.0, -1.5, 0.2), (0, 1, 0)),
                              ((2.0, -0.3, 1.5), (0, 0, -1)), ((0.5, -0.3, 0.2), (1, 0, 0))):
        hit, true = cast(origin, direction)
        # Stopped at the true face or inside the box (never behind it), at most 10 cm early.
        assert true - 0.1 < hit < true + 0.2, (origin, hit, true)


def test_a_thin_post_survives(box_post_doorway):
    _, _, cast = box_post_doorway
    for origin, direction in (((1.7, -0.5, 0.5), (0, 1, 0)), ((0.5, 0.6, 0.5), (1, 0, 0)), ((0.5, 0.6, 0.9),
                                                                                              (1, 0, 0))):
        hit, true = cast(origin, direction)
        assert abs(hit - true) < 0.03, (origin, hit, true)


def test_a_ray_through_the_doorway_passes(box_post_doorway):
    _, _, cast = box_post_doorway
    for y, z in ((-0.2, 0.5), (0.0, 0.5), (0.2, 0.5), (0.0, 0.03), (0.3, 0.03)):  # no sill left on the floor
        hit, true = cast((1.0, y, z), (1, 0, 0))
        assert true > 3.9 and abs(hit - true) < 0.05, (y, z, hit, true)  # the wall 1.8 m beyond the doorway


def test_the_floor_under_an_object_has_no_hole(box_post_doorway):
    _, proxy, cast = box_post_doorway
    for x, y in ((2.0, -0.3), (1.7, 0.6), (2.6, 0.0), (1.0, -0.4)):  # under the box, the post, behind, in front
        hit, _ = cast((x, y, 0.05), (0, 0, -1))
        assert hit == pytest.approx(0.05, abs=0.01), (x, y, hit)
    assert proxy.floor_z == 0.0


def test_the_scene_reports_its_agreement(box_post_doorway, capsys):
    _, proxy, _ = box_post_doorway
    agreement = proxy.info["agreement"]
    assert agreement["rays"] > 100_000 and agreement["within_5cm"] > 0.7 and agreement["median_m"] < 0.05
    assert proxy.info["measured_triangles"] > 5000 and "floaters" not in proxy.info  # measured: no floater pass


def test_cli_collider_writes_a_glb_and_prints_floaters_and_agreement(tmp_path, capsys):
    import open3d as o3d

    from lyra_sim.cli import main
    from lyra_sim.io import save_world
    from lyra_sim.synthetic.gaussian_rooms import camera_view, room_surfaces, surfels_world

    view, _ = camera_view(surfels_world(room_surfaces(), spacing=0.1))  # a splat file from elsewhere: no depth
    source = save_world(view, tmp_path / "room.ply")
    out = tmp_path / "proxy.glb"
    assert main(["collider", str(source), "-o", str(out), "--triangles", "5000"]) == 0
    printed = capsys.readouterr().out
    assert "floaters: 0 of" in printed and "collider vs picture: median" in printed
    assert f"wrote {out}" in printed
    mesh = o3d.io.read_triangle_mesh(str(out))
    assert 100 < len(mesh.triangles) <= 5000 + 12
    lo, hi = mesh.get_min_bound(), mesh.get_max_bound()
    assert lo[2] == pytest.approx(-0.2, abs=0.01) and 1.8 < hi[2] < 2.2  # floor box to the 2 m walls
    assert main(["collider", str(tmp_path / "missing.ply"), "-o", str(tmp_path / "x.glb")]) == 2
    assert not (tmp_path / "x.glb").exists()


def test_convex_parts_of_a_box_cover_the_box_and_leave_the_wall_alone(tmp_path):
    import open3d as o3d
    from scipy.spatial import ConvexHull

    from lyra_sim.physics.convex import object_parts, save_parts

    box = o3d.geometry.TriangleMesh.create_box(0.4, 0.3, 0.2).subdivide_midpoint(2)
    box.translate((1.0, 0.0, 0.0))
    wall = o3d.geometry.TriangleMesh.create_box(0.05, 4.0, 2.0)  # 4 m long: not an object
    wall.translate((3.0, -2.0, 0.0))
    vertices = np.concatenate([np.asarray(box.vertices), np.asarray(wall.vertices)])
    faces = np.concatenate([np.asarray(box.triangles), np.asarray(wall.triangles) + len(box.vertices)])
    objects = object_parts(vertices, faces, resolution=20_000)
    assert len(objects) == 1 and 1 <= len(objects[0]) <= 4
    points = np.concatenate([v for v, _ in objects[0]])
    np.testing.assert_allclose(points.min(axis=0), [1.0, 0.0, 0.0], atol=0.02)
    np.testing.assert_allclose(points.max(axis=0), [1.4, 0.3, 0.2], atol=0.02)
    volume = sum(ConvexHull(v).volume for v, _ in objects[0])
    assert volume == pytest.approx(0.4 * 0.3 * 0.2, rel=0.15)
    path = save_parts(tmp_path / "parts.obj", objects)
    assert path.read_text().count("\no ") + path.read_text().startswith("o ") == len(objects[0])


# ------------------------------------------------------------------- measured views, lids and walls (round 2)


def _board_depth(height_y: float, f: float = 300.0, size=(240, 320)):
    """Depth (OpenCV camera at the origin looking along +z, up = -y) of a wall at z = 3 and, in front of it at
    z = 2, the 4 cm high front edge of a 1.2 m wide board whose top is at y = ``height_y``; and K."""
    h, w = size
    K = np.array([[f, 0, w / 2], [0, f, h / 2], [0, 0, 1.0]])
    u, v = np.meshgrid(np.arange(w) + 0.5, np.arange(h) + 0.5)
    x, y = (u - K[0, 2]) / f, (v - K[1, 2]) / f
    depth = np.full((h, w), 3.0)
    on_board = (np.abs(2.0 * x) < 0.6) & (2.0 * y > height_y) & (2.0 * y < height_y + 0.04)
    depth[on_board] = 2.0
    return depth, K


def test_a_board_edge_above_the_camera_gets_a_deep_lid_and_one_below_a_thin_one():
    from lyra_sim.physics.measured import THIN_LID_M, depth_mesh
    from lyra_sim.physics.raycast import cast_rays

    down = np.array([[0.0, 1.0, 0.0]])  # +y is down in the OpenCV frame
    for top, depth_back in ((-0.3, 0.8), (0.3, THIN_LID_M)):  # 0.3 m above / below the eye
        depth, K = _board_depth(top)
        vertices, faces = depth_mesh(depth, K, np.eye(4), up=(0.0, -1.0, 0.0))
        # A ball's path down onto the board, 20 cm behind its front: the lid above the eye (0.8 x the 1 m gap back)
        # stops it; below the eye the camera would see a deep top, so the edge is a thin board's: a lid THIN_LID_M
        # deep holds a ball dropped on the edge and lets this path pass.
        for behind, stopped in ((0.2, depth_back > 0.2), (0.5 * THIN_LID_M, True)):
            hit = cast_rays(vertices, faces, np.array([[0.0, top - 0.5, 2.0 + behind]]), down)[0]
            assert (hit == pytest.approx(0.5, abs=0.02)) if stopped else not np.isfinite(hit), (top, behind, hit)


def test_measured_surfaces_explain_their_gaussians_but_not_edges_or_what_lies_behind():
    from lyra_sim.geometry.tsdf import DepthView
    from lyra_sim.physics.proxy import explained_by_views

    depth, K = _board_depth(-0.3)
    view = DepthView(depth, K, np.eye(4))
    on_wall = np.array([[0.5, 0.5, 3.0], [-0.8, 0.2, 3.0]])  # on the measured wall, far from the board
    behind = on_wall + np.array([0.0, 0.0, 0.5])  # hidden behind it (an invented back)
    board_edge = np.array([[0.0, -0.28, 2.0]])  # on the 4 cm board edge: a line of pixels, rendered instead
    explained = explained_by_views(np.concatenate([on_wall, behind, board_edge]), [view], tolerance=0.02)
    assert explained.tolist() == [True, True, False, False, False]


def test_the_completions_walls_are_recorded_and_become_solid_boxes(box_post_doorway):
    from lyra_sim.physics.walls import wall_planes

    scene, proxy, cast = box_post_doorway
    planes = wall_planes(scene.world)
    assert scene.world.info["completion"]["wall_planes"] and proxy.info["wall_boxes"] >= 1
    # The doorway wall's front (x = 3.15 in the true frame, which the aligned frame matches within a few cm).
    assert any(abs(p.normal[0] + 1) < 0.02 and abs(p.offset - 3.15) < 0.05 for p in planes), planes
    # Beside the doorway, hit from the front and from behind on the true faces; at 2.2 m too, above what the
    # input image shows of the 2.4 m wall (the completion found it cut off by the image: room-high).
    for y, z in ((-1.2, 1.0), (-2.2, 1.0), (1.4, 1.0), (-1.9, 2.2), (1.9, 2.2)):
        for origin, direction in (((1.0, y, z), (1, 0, 0)), ((4.5, y, z), (-1, 0, 0))):
            hit, true = cast(origin, direction)
            assert abs(hit - true) < 0.05, (origin, direction, hit, true)


def test_the_build_renders_only_what_the_measured_view_does_not_explain(box_post_doorway):
    scene, proxy, _ = box_post_doorway
    info = proxy.info
    assert 0 < info["rendered_gaussians"] < 0.5 * len(scene.world)
    assert info["views"] == 49 and set(info["stage_seconds"]) >= {"render", "fuse", "walls"}


# ------------------------------------------------------- round 3: what limited the seen share on the bench scenes


@pytest.fixture(scope="module")
def table_low_board():
    """One 320x240 RGB-D view of a table (3 cm top at 0.72 m) and a board 6 cm above the floor, and its proxy;
    yields a ray caster (true frame -> distances to proxy and true bodies)."""
    from lyra_sim.align import align_world
    from lyra_sim.generate import generate_world
    from lyra_sim.physics.aligned import move_views
    from lyra_sim.physics.proxy import build_collision_proxy
    from lyra_sim.physics.raycast import cast_rays
    from lyra_sim.synthetic.collider_scenes import collider_scene

    truth = collider_scene("table_low_board")
    rgb, depth, K, cam_to_world = truth.view(320, 240)
    world = align_world(generate_world(rgb, depth=depth, intrinsics=K))
    views = move_views([(depth, K, np.eye(4))], world.info["alignment"]["transform"])
    proxy = build_collision_proxy(world, extra_views=views, progress=False, agreement=False)
    to_aligned = np.asarray(world.info["alignment"]["transform"]) @ np.linalg.inv(cam_to_world)

    def cast(origin, direction):
        origin, direction = np.asarray(origin, float), np.asarray(direction, float)
        true, _, _ = truth.ray_test(origin[None], direction[None])
        o, d = to_aligned[:3, :3] @ origin + to_aligned[:3, 3], to_aligned[:3, :3] @ direction
        return float(cast_rays(proxy.vertices, proxy.faces, o[None], d[None])[0]), float(true[0])

    yield cast
    truth.close()


def test_a_board_just_above_the_floor_is_not_cut_out_as_floor(table_low_board):
    # The board's top is 6 cm up: inside the fused floor's band of 3 voxels (7.6 cm here), which used to take the
    # measured board for floor; balls on it rested 6 cm low.
    for x, y in ((2.1, -0.6), (2.3, -0.7), (2.0, -0.5)):
        hit, true = table_low_board((x, y, 0.5), (0.0, 0.0, -1.0))
        assert true == pytest.approx(0.44, abs=1e-3) and abs(hit - true) < 0.015, (x, y, hit, true)


def test_no_slab_hangs_under_a_table_top_seen_from_above(table_low_board):
    # Rays under the 0.69 m underside pass to the wall 2.55 m away (the TSDF's 4-voxel truncation closed the
    # invented back just under the top from below 10 cm lower: a ray at 0.64 m stopped under the table).
    for y in (0.2, 0.3, 0.4):
        for z in (0.5, 0.6, 0.64):
            hit, true = table_low_board((1.0, y, z), (1.0, 0.0, 0.0))
            assert true == pytest.approx(2.55, abs=0.01) and abs(hit - true) < 0.05, (y, z, hit, true)


def test_a_wall_box_ends_where_the_wall_ends_not_where_the_floor_does():
    """The floor meets a wall's plane along its foot line past the wall's end: that is open floor, no wall."""
    from lyra_sim.physics.walls import WallPlane, wall_box

    rng = np.random.default_rng(0)
    # A wall in the plane x = 2 (normal -x: it faces the room at x < 2), 1 m long (0 <= y <= 1), 2 m high ...
    wall = np.stack([np.full(4000, 2.0), rng.uniform(0.0, 1.0, 4000), rng.uniform(0.0, 2.0, 4000)], axis=1)
    # ... on a floor that runs 3 m past it both ways and across its plane.
    floor = np.stack([rng.uniform(0.0, 3.0, 20000), rng.uniform(-3.0, 4.0, 20000), np.zeros(20000)], axis=1)
    means = np.concatenate([wall, floor])
    plane = WallPlane(np.array([-1.0, 0.0, 0.0]), 2.0, 2.0)
    box = wall_box(plane, means, np.full(len(means), 0.01), [], 0.02, 0.1)
    y = box.vertices[:, 1]
    assert y.min() > -0.1 and y.max() < 1.1  # the wall's own extent; the floor's -3..4 m gave a 7 m wall
    assert box.covers(np.array([[2.02, 0.5, 1.0]])).all() and not box.covers(np.array([[2.02, 2.5, 0.5]])).any()


# ------------------------------------------------------------ round 4: what limited the table at 640x480


def _post_depth(size=(240, 320), f=250.0, across=(140, 156), axis=1):
    """Depth (OpenCV camera at the origin looking along +z) of a wall at z = 3 and, at z = 2, a bar whose edges lie
    on the pixel borders ``across`` (a post over columns 140..155 for ``axis`` 1, a board over those rows for
    ``axis`` 0), rendered at pixel centres; and K. 1 pixel = 8 mm at the bar."""
    h, w = size
    K = np.array([[f, 0, w / 2], [0, f, h / 2], [0, 0, 1.0]])
    index = np.arange(w if axis == 1 else h)
    on = (index >= across[0]) & (index < across[1])
    depth = np.full((h, w), 3.0)
    if axis == 1:
        depth[:, on] = 2.0
    else:
        depth[on, :] = 2.0
    return depth, K


@pytest.mark.parametrize("axis", [1, 0])
@pytest.mark.parametrize("stride", [2, 1])
def test_a_measured_bar_reaches_its_measured_edges(axis, stride):
    """When the measured mesh takes every 2nd pixel (640x480 frames do), a bar over pixels 140..155 has its last
    grid vertex at 154, 1.5 pixels inside its right (lower) edge, and rays grazing the bar there passed it. Its
    edges now sit on the measured pixel borders 140 and 156 (the full-resolution pixel 155 lies on the bar), at
    every stride (at stride 1 the last pixel centres lie half a pixel inside)."""
    from lyra_sim.physics.measured import depth_mesh, depth_stride
    from lyra_sim.physics.raycast import cast_rays

    depth, K = _post_depth(axis=axis)
    budget = {2: 60_000, 1: 200_000}[stride]
    assert depth_stride(240, 320, budget) == stride
    vertices, faces = depth_mesh(depth, K, np.eye(4), max_triangles=budget)
    pixels, on_bar = [], []
    for edge, outward in ((156.0, 1.0), (140.0, -1.0)):
        for px, on in ((edge - 0.2 * outward, True), (edge + 0.3 * outward, False)):
            pixels.append([px, 60.5] if axis == 1 else [60.5, px])  # (u, v), away from the centre row
            on_bar.append(on)
    pixels = np.array(pixels)
    rays = np.c_[(pixels - K[:2, 2]) / K[0, 0], np.ones(len(pixels))]
    hits = cast_rays(vertices, faces, np.zeros((len(rays), 3)), rays / np.linalg.norm(rays, axis=1, keepdims=True))
    at_bar = np.abs(hits - 2.0 * np.linalg.norm(rays, axis=1)) < 0.01  # (beside it: the wall, or its gap at the jump)
    assert at_bar.tolist() == on_bar, (axis, stride, hits)


def test_bulk_behind_a_thin_run_is_marked_but_not_a_wide_ones_nor_the_background():
    from lyra_sim.geometry.tsdf import DepthView
    from lyra_sim.physics.measured import behind_thin_runs

    depth, K = _post_depth()  # a 12.8 cm post at 2 m before a wall at 3 m
    depth[150:200, 220:320] = 2.0  # a box 0.8 m wide to the right of it (cut off by the image's right border)
    depth[150:200, 20:120] = 2.0  # and one 0.8 m wide, whole, to the left
    view = DepthView(depth, K, np.eye(4))

    def at(u, v, z):  # the point at depth z on the ray through pixel (u, v)'s centre
        return [(u + 0.5 - K[0, 2]) / K[0, 0] * z, (v + 0.5 - K[1, 2]) / K[1, 1] * z, z]

    points = np.array([at(148, 50, 2.4),  # 0.4 m behind the post: deeper than its 12.8 cm -> marked
                       at(148, 50, 2.1),  # within its width behind it: kept
                       at(148, 50, 2.97),  # as far as the wall beside it (the background continued): kept
                       at(70, 170, 2.4),  # 0.4 m behind the whole 0.8 m box: kept
                       at(280, 170, 2.4)])  # behind the cut-off box (its width unknown): kept
    assert behind_thin_runs(points, [view], margin=0.02).tolist() == [True, False, False, False, False]

