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
