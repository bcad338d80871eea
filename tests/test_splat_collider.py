"""Colliders of worlds that came without measured depth (a splat file from elsewhere): an analytic Gaussian room
with a box, saved as PLY with no provenance and reloaded, must give a collider that is solid where the box is,
holds a dropped ball on top, has no hole in the floor and leaves floaters out."""

import numpy as np
import pytest

from lyra_sim import GaussianWorld

# The room of lyra_sim.synthetic.gaussian_rooms in the aligned frame: alignment puts the camera (x = 0.3 in the
# room) over the origin, so the box spans x 1.9-2.5, y -0.4..0.4, z 0-0.6 and the far wall stands at x = 3.7.
BOX_LO, BOX_HI = np.array([1.9, -0.4, 0.0]), np.array([2.5, 0.4, 0.6])
FAR_WALL_X = 3.7
SPECKS = np.array([[1.0, 0.0, 0.9], [1.3, 0.25, 0.6], [0.9, -0.3, 0.5]])  # floaters in mid-air (room frame - 0.3)


@pytest.fixture(scope="module")
def splat_file_room(tmp_path_factory):
    """(aligned world, proxy) of the room with a box and three isolated specks, given only as a PLY in its
    camera's OpenCV frame (no depth, no completion record, no observed flags)."""
    from lyra_sim.align import align_world
    from lyra_sim.io import load_world, save_world
    from lyra_sim.physics.proxy import build_collision_proxy
    from lyra_sim.synthetic.gaussian_rooms import camera_view, room_surfaces, surfels_world

    room = surfels_world(room_surfaces(), spacing=0.03)
    specks = GaussianWorld.from_rgb(SPECKS + np.array([0.3, 0.0, 0.0]), np.full((3, 3), 0.5), np.full((3, 3), 0.03),
                                    np.full(3, 0.95))
    specks = specks._replace(frame="z_up", meters_per_unit=1.0)
    view, _ = camera_view(GaussianWorld.concatenate([room, specks]))
    path = save_world(view._replace(info={}, observed=None), tmp_path_factory.mktemp("splat") / "room.ply")
    world = align_world(load_world(path))
    assert "completion" not in world.info  # a file from elsewhere: nothing but the Gaussians
    return world, build_collision_proxy(world, progress=False)


def _cast(proxy, origin, direction) -> float:
    from lyra_sim.physics.raycast import cast_rays

    direction = np.asarray(direction, float) / np.linalg.norm(direction)
    return float(cast_rays(proxy.vertices, proxy.faces, np.asarray(origin, float)[None], direction[None])[0])


def test_the_box_is_solid_from_the_side_from_above_and_from_behind(splat_file_room):
    _, proxy = splat_file_room
    for origin, direction, true in (
        ((0.5, 0.0, 0.3), (1, 0, 0), BOX_LO[0] - 0.5),  # the face the camera saw
        ((2.2, -1.2, 0.3), (0, 1, 0), 1.2 + BOX_LO[1]),  # the sides, edge-on to the camera
        ((2.2, 1.2, 0.3), (0, -1, 0), 1.2 - BOX_HI[1]),
        ((2.2, 0.0, 1.5), (0, 0, -1), 1.5 - BOX_HI[2]),  # the top, from above
        ((3.4, 0.0, 0.3), (-1, 0, 0), 3.4 - BOX_HI[0]),  # the back, hidden from the camera
    ):
        hit = _cast(proxy, origin, direction)
        # Stopped at the true face or inside the box, never behind it, at most 12 cm early: the measured front's
        # sides run back along the camera's rays, which fan out past the box's sides by ~6 cm at its middle (the
        # RGB-D path's test allows 10 cm for that), and the 2.4 cm surfel discs show the box up to ~5 cm wider.
        assert true - 0.12 < hit < true + 0.5 * (BOX_HI - BOX_LO).min(), (origin, hit, true)


def test_a_dropped_ball_rests_on_the_box_and_on_the_floor_beside_it(splat_file_room):
    from lyra_sim.physics.pybullet_quiet import import_pybullet

    p = import_pybullet()
    _, proxy = splat_file_room
    client = p.connect(p.DIRECT)
    try:
        p.setGravity(0, 0, -9.81, physicsClientId=client)
        mesh = p.createCollisionShape(p.GEOM_MESH, vertices=proxy.vertices.tolist(),
                                      indices=proxy.faces.reshape(-1).astype(int).tolist(),
                                      flags=p.GEOM_FORCE_CONCAVE_TRIMESH, physicsClientId=client)
        p.createMultiBody(0, mesh, physicsClientId=client)
        sphere = p.createCollisionShape(p.GEOM_SPHERE, radius=0.05, physicsClientId=client)
        starts = [(2.2, 0.0, 1.2), (2.05, 0.25, 1.2), (1.2, 0.8, 1.2)]
        balls = [p.createMultiBody(0.1, sphere, basePosition=s, physicsClientId=client) for s in starts]
        for ball in balls:
            p.changeDynamics(ball, -1, rollingFriction=0.02, lateralFriction=1.0, physicsClientId=client)
        for _ in range(480):
            p.stepSimulation(physicsClientId=client)
        rest = [p.getBasePositionAndOrientation(b, physicsClientId=client)[0][2] for b in balls]
    finally:
        p.disconnect(client)
    assert rest[0] == pytest.approx(BOX_HI[2] + 0.05, abs=0.03)
    assert rest[1] == pytest.approx(BOX_HI[2] + 0.05, abs=0.03)
    assert rest[2] == pytest.approx(0.05, abs=0.02)


def test_the_floor_has_no_hole_under_the_box_or_anywhere_near_it(splat_file_room):
    _, proxy = splat_file_room
    for x, y in ((2.2, 0.0), (2.45, 0.35), (1.0, -0.5), (3.0, 1.0), (0.2, 0.0)):
        assert _cast(proxy, (x, y, 0.05), (0, 0, -1)) == pytest.approx(0.05, abs=0.01), (x, y)
    assert proxy.floor_z == 0.0


def test_floaters_stay_out_of_the_collider_and_are_reported(splat_file_room):
    world, proxy = splat_file_room
    assert proxy.info["floaters"]["isolated"] >= len(SPECKS) and proxy.info["floaters"]["of"] == len(world)
    for speck in SPECKS:  # a ray grazing each speck from the side meets the side wall 1.5 m away, not the speck
        hit = _cast(proxy, speck + np.array([0.0, -0.2, 0.0]), (0, 1, 0))
        assert hit > 1.0, (speck, hit)


def test_the_source_view_stands_in_for_measured_depth_and_finds_the_walls(splat_file_room):
    _, proxy = splat_file_room
    info = proxy.info
    assert info["source_views"]["views"] == 1 and info["measured_triangles"] > 2000  # the floor: its box instead
    # The far wall (x = 3.7) and the side walls are in the source view: they become boxes.
    assert info["source_views"]["walls"] >= 2 and info["wall_boxes"] >= 2
    assert _cast(proxy, (1.0, -1.0, 1.5), (1, 0, 0)) == pytest.approx(FAR_WALL_X - 1.0, abs=0.05)
    # The scene's extent comes from the surfaces the view shows: voxels of 1/160 of the ~4 m room, not more.
    assert 0.015 < info["voxel_size"] < 0.035
    assert info["agreement"]["within_5cm"] > 0.8


def test_layout_intrinsics_recover_the_field_and_resolution_of_the_camera_that_made_the_gaussians():
    from lyra_sim.physics.splat_collider import layout_intrinsics

    rng = np.random.default_rng(0)
    width, height, f = 480, 360, 386.0  # a 64 x 50 degree camera
    u, v = rng.uniform(0, width, 50_000), rng.uniform(0, height, 50_000)
    z = rng.uniform(1.0, 4.0, 50_000)
    means = np.stack([(u - width / 2) / f * z, (v - height / 2) / f * z, z], axis=1)
    sigmas = z / f  # one pixel's footprint each, as a lift from that camera makes them
    K, w, h = layout_intrinsics(means, sigmas)
    # The 5-95 % quantiles see 90 % of the half-width: the field is that much narrower, at the same resolution.
    assert K[0, 0] == pytest.approx(f, rel=0.05)
    assert w == pytest.approx(0.9 * width, rel=0.05) and h == pytest.approx(0.9 * height, rel=0.05)


def _analytic_camera(eye: np.ndarray, look: np.ndarray, fov_deg: float, width: int, height: int):
    """(world_to_cam 4x4, K, world ray per unit of z-depth at each pixel centre) of a z-up pinhole camera at ``eye``
    looking along ``look``, ``fov_deg`` wide."""
    from lyra_sim.camera import look_at_matrix

    world_to_cam = np.asarray(look_at_matrix(eye, eye + look, up=np.array([0, 0, 1.0])), np.float64).reshape(4, 4)
    f = 0.5 * width / np.tan(np.radians(fov_deg / 2))
    K = np.array([[f, 0, width / 2], [0, f, height / 2], [0, 0, 1.0]])
    u, v = np.meshgrid(np.arange(width) + 0.5, np.arange(height) + 0.5)
    rays = np.stack([(u - K[0, 2]) / f, (v - K[1, 2]) / f, np.ones_like(u)], axis=-1) @ np.linalg.inv(
        world_to_cam)[:3, :3].T
    return world_to_cam, K, rays


def _post_on_floor_view(width: int = 320, height: int = 240):
    """A DepthView (z up, floor z = 0) from a camera 1.2 m up looking along +x and 20 degrees down at a 5 cm post
    (front face x = 2, |y| < 0.025, 0.8 m high) on the floor: depth cast analytically per pixel."""
    from lyra_sim.geometry.tsdf import DepthView

    eye = np.array([0.0, 0.0, 1.2])
    world_to_cam, K, rays = _analytic_camera(eye, np.array([np.cos(0.35), 0.0, -np.sin(0.35)]), 60.0, width, height)
    with np.errstate(divide="ignore", invalid="ignore"):
        t_floor = np.where(rays[..., 2] < 0, -eye[2] / rays[..., 2], np.inf)
        t_post = (2.0 - eye[0]) / rays[..., 0]
    at_post = eye + rays * t_post[..., None]
    on_post = (t_post > 0) & (np.abs(at_post[..., 1]) < 0.025) & (at_post[..., 2] > 0) & (at_post[..., 2] < 0.8)
    depth = np.where(on_post & (t_post < t_floor), t_post, np.where(np.isfinite(t_floor), t_floor, 0.0))
    return DepthView(depth.astype(np.float32), K, world_to_cam), on_post & (t_post < t_floor), at_post


def test_snapping_the_floor_leaves_the_foot_of_a_post_standing():
    # The post's lowest pixels lie as near the floor as the floor's own, and the 15-pixel window around them is
    # mostly floor, so the old snap moved them onto the floor behind the post (up to 7 cm farther).
    from lyra_sim.physics.splat_collider import on_floor

    view, post, points = _post_on_floor_view()
    foot = post & (points[..., 2] < 0.04)
    assert foot.sum() > 10
    snapped = on_floor(view)
    assert np.abs(snapped.depth[foot] - view.depth[foot]).max() < 1e-4  # the foot stays where it stands
    floor = (view.depth > 0) & ~post
    assert np.abs(snapped.depth[floor] - view.depth[floor]).max() < 1e-3  # the true floor is on z = 0 already


def test_the_source_view_is_small_enough_for_its_mesh_to_keep_every_pixel(splat_file_room):
    # A world that recorded a 640 x 480 camera: its source view is rendered at 320 x 240 (the focal length halved),
    # so the measured mesh (lyra_sim.physics.measured) keeps every pixel of it; at 640 x 480 it kept every 2nd.
    from lyra_sim.physics.measured import depth_stride
    from lyra_sim.physics.proxy import MEASURED_OVERSAMPLE, MEASURED_SHARE, TRIANGLE_BUDGET
    from lyra_sim.physics.splat_collider import splat_evidence

    world, _ = splat_file_room
    f = 0.5 * 640 / np.tan(np.radians(32.0))
    recorded = world._replace(info={**world.info, "image_size": [640, 480],
                                    "intrinsics": [[f, 0, 320], [0, f, 240], [0, 0, 1]]})
    view = splat_evidence(recorded).views[0]
    assert view.depth.shape == (240, 320)
    assert view.K[0, 0] == pytest.approx(f / 2) and view.K[:2, 2] == pytest.approx([160, 120])
    assert depth_stride(240, 320, MEASURED_OVERSAMPLE * int(MEASURED_SHARE * TRIANGLE_BUDGET)) == 1


def _corner_view(side_start: float, side_y: float = -1.8, width: int = 320, height: int = 240):
    """A DepthView (z up, floor z = 0) from a camera 1.2 m up looking level along +x (64 degrees wide) at a far
    wall (x = 3.5) and a side wall (y = ``side_y``) from x = ``side_start`` to the far wall, 2.6 m high: depth cast
    analytically per pixel. At y = -1.8 the image's right edge cuts the side wall at x = 2.88: 0.62 m of it seen."""
    from lyra_sim.geometry.tsdf import DepthView

    eye = np.array([0.0, 0.0, 1.2])
    world_to_cam, K, rays = _analytic_camera(eye, np.array([1.0, 0.0, 0.0]), 64.0, width, height)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(rays[..., 2] < 0, -eye[2] / rays[..., 2], np.inf)  # the floor
        t_far, t_side = (3.5 - eye[0]) / rays[..., 0], (side_y - eye[1]) / rays[..., 1]
    far, side = eye + rays * t_far[..., None], eye + rays * t_side[..., None]
    on_far = (t_far > 0) & (far[..., 2] > 0) & (far[..., 2] < 2.6) & (far[..., 1] > side_y)
    on_side = (t_side > 0) & (side[..., 2] > 0) & (side[..., 2] < 2.6) & (side[..., 0] > side_start) & (
        side[..., 0] < 3.5)
    t = np.minimum(t, np.where(on_far, t_far, np.inf))
    t = np.minimum(t, np.where(on_side, t_side, np.inf))
    return DepthView(np.where(np.isfinite(t), t, 0.0).astype(np.float32), K, world_to_cam)


def test_a_side_wall_cut_off_by_a_laid_out_view_is_still_a_wall():
    # A view laid out from the Gaussians spans ~90 % of their maker's field (LAYOUT_WALL_WIDTH): the bench's
    # doorway lost its 0.6 m side wall that way (0.614 m seen in the input, 0.592 m in the layout view).
    from lyra_sim.physics.splat_collider import LAYOUT_WALL_WIDTH, source_walls

    def sides(walls):
        return [wall for wall in walls if abs(wall.normal[1]) > 0.99]

    view = _corner_view(2.0)  # 0.62 m of the side wall in view: 0.56 m between its 2-98 % points
    assert not sides(source_walls(view))  # under the completion's 0.5 camera heights (0.6 m)
    (side,) = sides(source_walls(view, LAYOUT_WALL_WIDTH))
    assert side.normal[1] > 0 and side.offset == pytest.approx(1.8, abs=0.02)  # facing the camera, 1.8 m away
    assert side.top == pytest.approx(2.6, abs=0.05)  # cut off by the image's top: room-high
    far = [wall for wall in source_walls(view, LAYOUT_WALL_WIDTH) if abs(wall.normal[0]) > 0.99]
    assert len(far) == 1 and far[0].offset == pytest.approx(3.5, abs=0.02)
    # A plane narrower than the eased width is no wall all the same (0.3 m: the front of a cabinet).
    assert not sides(source_walls(_corner_view(3.2), LAYOUT_WALL_WIDTH))


@pytest.fixture(scope="module")
def table_splat_file(tmp_path_factory):
    """bench_colliders' table with chairs (a 1.2 x 0.8 m table, 3 cm top at 0.72 m, 3 cm legs, a wall 4.15 m from the
    camera) lifted from one 320x240 RGB-D view and given only as a splat file (saved as PLY without its depth or
    provenance, reloaded), and the collider of that file; yields a ray caster (true frame -> distances to the
    collider and to the true bodies)."""
    from lyra_sim.align import align_world
    from lyra_sim.generate import generate_world
    from lyra_sim.io import load_world, save_world
    from lyra_sim.physics.proxy import build_collision_proxy
    from lyra_sim.physics.raycast import cast_rays
    from lyra_sim.synthetic.collider_scenes import collider_scene

    truth = collider_scene("table_chairs")
    rgb, depth, K, cam_to_world = truth.view(320, 240)
    lifted = generate_world(rgb, depth=depth, intrinsics=K)
    path = save_world(lifted._replace(info={}, observed=None), tmp_path_factory.mktemp("splat") / "table.ply")
    world = align_world(load_world(path))
    proxy = build_collision_proxy(world, progress=False, agreement=False)
    to_aligned = np.asarray(world.info["alignment"]["transform"]) @ np.linalg.inv(cam_to_world)

    def cast(origins, directions):
        origins, directions = np.atleast_2d(origins).astype(float), np.atleast_2d(directions).astype(float)
        directions = directions / np.linalg.norm(directions, axis=1, keepdims=True)
        true, _, _ = truth.ray_test(origins, directions)
        o, d = origins @ to_aligned[:3, :3].T + to_aligned[:3, 3], directions @ to_aligned[:3, :3].T
        return cast_rays(proxy.vertices, proxy.faces, o, d), true

    yield cast
    truth.close()


def test_no_slab_hangs_under_a_table_top_given_as_a_splat_file(table_splat_file):
    # Level rays just under the table top's 0.69 m underside, between its legs (y +-0.37), pass under the table
    # (x 1.8-3.0) to the chair behind it or the wall. Seen only from above, the top got a fused underside 5-10 cm
    # below it (the TSDF's truncation band: views passing under the table make the space there free) that stopped
    # them under the table. (What they meet behind it is no matter here: the camera saw the chair's back only above
    # the table.)
    y, z = np.meshgrid([-0.33, -0.25, 0.0, 0.25, 0.33], [0.62, 0.64, 0.66, 0.68])
    origins = np.stack([np.full(y.size, 1.0), y.ravel(), z.ravel()], axis=1)
    hit, true = table_splat_file(origins, np.tile([1.0, 0.0, 0.0], (len(origins), 1)))
    assert (true > 2.4).all()  # the chair's back (x 3.48) or the wall (x 4.15)
    assert (hit > 2.05).all(), np.round(hit, 2)


def test_a_leg_given_as_a_splat_file_is_as_wide_as_the_leg_seen_from_its_camera(table_splat_file):
    # A fan of rays from the camera the file was made from across the table's front left leg (3 cm square, front
    # face x = 1.815, y 0.355-0.385, 2.1 m away: a pixel is 8 mm there) at 0.3 m up, a quarter of a millimetre apart
    # at the leg: the collider's leg is as wide as the true one within 5 mm, in one piece. The source view's median
    # depth shows a silhouette about half a pixel out already; meshed half a pixel further out on each side, as a
    # depth camera's is, the leg stood 1.5 cm too wide. (Its position is not asserted: the file's alignment is fitted
    # anew, which can move the leg some millimetres sideways.)
    eye = np.array([0.0, 0.0, 1.2])
    y = np.linspace(0.31, 0.43, 481)
    ends = np.stack([np.full(len(y), 1.815), y, np.full(len(y), 0.3)], axis=1)
    hit, true = table_splat_file(np.tile(eye, (len(y), 1)), ends - eye)
    reach = np.linalg.norm(ends - eye, axis=1)  # the floor and the wall behind the leg lie 0.5 m and more beyond
    on_true, on_proxy = np.flatnonzero(true < reach + 0.1), np.flatnonzero(hit < reach + 0.1)
    # (the camera sees the leg's inner side too: its silhouette begins at the back corner, y 0.355 at x 1.845)
    assert y[on_true[0]] == pytest.approx(0.349, abs=0.002) and y[on_true[-1]] == pytest.approx(0.385, abs=0.002)
    assert len(on_proxy) and len(on_proxy) == on_proxy[-1] - on_proxy[0] + 1  # one leg, no gaps
    width, true_width = np.ptp(y[on_proxy]), np.ptp(y[on_true])
    assert abs(width - true_width) < 0.005, (width, true_width)


def test_a_splat_file_is_aligned_on_its_true_floor_out_to_the_far_wall(table_splat_file):
    # Rays straight down from 0.5 m over the floor the camera saw, from 1 m to the far wall (4.15 m): the collider's
    # floor (the plane z = 0 of the file's alignment) lies where the true floor does within 4 mm. The floor is
    # fitted anew on the file's Gaussians: refined once in each of two bands, the fit kept part of the RANSAC
    # plane's lean (0.4 degrees: 2-3 cm too high at the far wall).
    x, y = np.meshgrid(np.linspace(1.0, 4.0, 7), [-1.5, -1.0, 1.0, 1.5])
    origins = np.stack([x.ravel(), y.ravel(), np.full(x.size, 0.5)], axis=1)
    hit, true = table_splat_file(origins, np.tile([0.0, 0.0, -1.0], (len(origins), 1)))
    on_floor = np.abs(true - 0.5) < 1e-3
    assert on_floor.sum() >= 20
    np.testing.assert_allclose(hit[on_floor], 0.5, atol=0.004)
