"""Collision proxies against known geometry, mesh cleaning, PyBullet collisions."""

import numpy as np
import open3d as o3d
import pytest
import torch
from scipy.spatial import cKDTree

from lyra_sim import DynamicGaussianWorld
from lyra_sim.align import align_world
from lyra_sim.physics import BulletScene, align_with_proxies, build_collision_proxy
from lyra_sim.physics.aligned import is_aligned, move_views
from lyra_sim.physics.proxy import fill_small_holes
from lyra_sim.physics.raycast import cast_rays
from lyra_sim.synthetic.gaussian_rooms import (
    BOX_MAX,
    BOX_MIN,
    ROOM_X,
    ROOM_Y,
    ROOM_Z,
    camera_view,
    room_surfaces,
    surfels_world,
)


def aligned_room(box_offset=(0.0, 0.0), spacing=0.03):
    """The synthetic room as a generator would give it (camera frame), then aligned: room frame shifted so the
    camera stands over the origin (its eye is at x = 0.3, y = 0 and it looks along +x)."""
    view, _ = camera_view(surfels_world(room_surfaces(box_offset=box_offset), spacing=spacing))
    return align_world(view)


def surface_samples(box_offset=(0.0, 0.0), spacing=0.01, wall_backs: bool = False):
    """Dense points on the true obstacle surfaces (walls and box), in the aligned frame; with ``wall_backs`` also
    on the backs of the walls as the collider's wall boxes have them (WALL_THICKNESS_M behind each front)."""
    from lyra_sim.physics.walls import WALL_THICKNESS_M

    planes = room_surfaces(box_offset=box_offset)[1:]  # no floor: it is a plane in the proxy
    if wall_backs:
        planes += [(origin - WALL_THICKNESS_M * normal, u, v, normal) for origin, u, v, normal in planes[:4]]
    points = surfels_world(planes, spacing=spacing).means.numpy().astype(np.float64)
    return points - [0.3, 0.0, 0.0]


@pytest.fixture(scope="module")
def room_proxy():
    world = aligned_room()
    return world, build_collision_proxy(world, progress=False)


def test_proxy_matches_the_room_geometry(room_proxy):
    _, proxy = room_proxy
    voxel = proxy.info["voxel_size"]
    truth = cKDTree(surface_samples(wall_backs=True))  # the walls are boxes of real thickness
    vertices, faces = proxy.obstacle_mesh
    mesh = o3d.geometry.TriangleMesh(o3d.utility.Vector3dVector(vertices), o3d.utility.Vector3iVector(faces))
    o3d.utility.random.seed(0)
    samples = np.asarray(mesh.sample_points_uniformly(20_000).points)
    accuracy, _ = truth.query(samples)
    completeness, _ = cKDTree(samples).query(surface_samples(spacing=0.05))
    # Chamfer distance (mean of both directions) below 2 voxels; nearly all surface covered within 3 voxels.
    chamfer = 0.5 * (accuracy.mean() + completeness.mean())
    print(f"chamfer {chamfer:.4f} m, voxel {voxel:.4f} m, accuracy p95 {np.quantile(accuracy, 0.95):.4f} m")
    assert chamfer < 2 * voxel, (chamfer, voxel)
    assert np.quantile(accuracy, 0.95) < 3 * voxel
    assert (completeness < 3 * voxel).mean() > 0.9
    # The floor is a box of real thickness whose top is exactly z = 0, spanning the room.
    floor = proxy.vertices[proxy.faces[proxy.obstacle_faces:]].reshape(-1, 3)
    assert proxy.floor_z == 0.0 and floor[:, 2].max() == 0.0 and floor[:, 2].min() == pytest.approx(-0.2)
    assert floor[:, 0].min() <= ROOM_X[0] - 0.3 and floor[:, 0].max() >= ROOM_X[1] - 0.3
    assert proxy.info["triangles"] <= 100_000  # the default budget, floor box included


def test_proxy_budget_and_file_round_trip(tmp_path):
    world = aligned_room(spacing=0.05)
    proxy = build_collision_proxy(world, triangle_budget=2_000, progress=False)
    assert len(proxy.faces) <= 2_000  # the budget holds every triangle, the floor box's too
    path = proxy.save(tmp_path / "proxy.obj")
    loaded = o3d.io.read_triangle_mesh(str(path))
    assert len(loaded.triangles) == len(proxy.faces)
    np.testing.assert_allclose(np.asarray(loaded.get_axis_aligned_bounding_box().get_max_bound()),
                               proxy.vertices.max(axis=0), atol=1e-5)
    with pytest.raises(ValueError, match="suffix"):
        proxy.save(tmp_path / "proxy.txt")
    assert not (tmp_path / "proxy.txt").exists()


def test_dynamic_world_gets_one_proxy_per_keyframe():
    still, moved = aligned_room(spacing=0.05), aligned_room(box_offset=(0.0, 0.8), spacing=0.05)
    proxies = build_collision_proxy(DynamicGaussianWorld([0.0, 1.0], [still, moved]), progress=False)
    assert len(proxies) == 2
    box_centre = (BOX_MIN + BOX_MAX) / 2 - [0.3, 0.0, 0.0]
    for proxy, dy in zip(proxies, (0.0, 0.8), strict=True):
        vertices, _ = proxy.obstacle_mesh
        near_box = vertices[np.linalg.norm(vertices[:, :2] - box_centre[:2] - [0, dy], axis=1) < 0.45]
        # The box's top where a ball would land on it (a world of 4 cm surfels: their discs reach past its edges).
        top = 2.0 - cast_rays(proxy.vertices, proxy.faces, np.array([[box_centre[0], box_centre[1] + dy, 2.0]]),
                              np.array([[0.0, 0.0, -1.0]]))[0]
        assert len(near_box) > 20 and top == pytest.approx(BOX_MAX[2], abs=0.05)
        assert near_box[:, 2].max() < BOX_MAX[2] + 0.1


def test_fill_small_holes_closes_small_loops_only():
    grid = o3d.geometry.TriangleMesh.create_box(1, 1, 1).subdivide_midpoint(3)
    vertices, faces = np.asarray(grid.vertices), np.asarray(grid.triangles)
    centroids = vertices[faces].mean(axis=1)
    small_hole = np.linalg.norm(centroids - [0.5, 0.5, 1.0], axis=1) < 0.1  # a few top triangles
    big_hole = (centroids[:, 2] < 1e-6) & (np.linalg.norm(centroids[:, :2] - 0.5, axis=1) < 0.45)
    kept = faces[~small_hole & ~big_hole]
    filled_v, filled_f = fill_small_holes(vertices, kept, max_perimeter=1.0)
    added = filled_f[len(kept):]
    assert len(added) > 0
    assert np.all(np.abs(filled_v[added].reshape(-1, 3)[:, 2] - 1.0) < 1e-9)  # only the top hole was closed
    # Closed surface again around the small hole: every edge near the top is shared by two triangles.
    edges = np.sort(np.concatenate([filled_f[:, [0, 1]], filled_f[:, [1, 2]], filled_f[:, [2, 0]]]), axis=1)
    _, counts = np.unique(edges, axis=0, return_counts=True)
    top_edges = np.unique(edges[filled_v[edges].mean(axis=1)[:, 2] > 0.99], axis=0)
    assert np.all(counts[np.searchsorted(np.unique(edges, axis=0).view("i8,i8").ravel(),
                                         top_edges.view("i8,i8").ravel())] == 2)


def test_robot_collides_with_proxy_walls(room_proxy):
    _, proxy = room_proxy
    scene = BulletScene(proxy)
    try:
        wall_x = ROOM_X[1] - 0.3  # the far wall in the aligned frame
        scene.set_robot_pose(wall_x - 0.8, -1.0, 0.0)  # beside the box, facing the far wall
        assert not scene.in_collision(margin=0.01)
        hit = False
        for _ in range(40):
            scene.drive(0.5, 0.0, 0.1)
            if scene.in_collision():
                hit = True
                break
        x = scene.robot_state()[0]
        assert hit, "drove into the wall without a contact"
        assert x < wall_x, "went through the wall"
        assert x > wall_x - 0.4  # and it did get there
        # The floor alone does not count as a collision; driving freely in the open does not collide.
        scene.set_robot_pose(0.5, 0.0, np.pi)
        scene.drive(0.3, 0.0, 0.5)
        assert not scene.in_collision()
        # Side walls too (y = ROOM_Y[1]).
        scene.set_robot_pose(1.0, ROOM_Y[1] - 0.6, np.pi / 2)
        for _ in range(40):
            scene.drive(0.5, 0.0, 0.1)
            if scene.in_collision():
                break
        assert scene.in_collision() and scene.robot_state()[1] < ROOM_Y[1]
    finally:
        scene.close()


def test_robot_camera_looks_where_the_robot_faces(room_proxy):
    _, proxy = room_proxy
    scene = BulletScene(proxy)
    try:
        scene.set_robot_pose(0.5, 0.2, np.pi / 2)  # facing +y
        world_to_cam = scene.camera_world_to_cam()
        rotation, translation = world_to_cam[:3, :3], world_to_cam[:3, 3]
        np.testing.assert_allclose(rotation[2], [0, 1, 0], atol=1e-3)  # optical z = forward
        np.testing.assert_allclose(rotation[1], [0, 0, -1], atol=1e-3)  # optical y = down
        np.testing.assert_allclose(rotation[0], [1, 0, 0], atol=1e-3)  # optical x = right of +y is +x
        position = -rotation.T @ translation
        np.testing.assert_allclose(position, [0.5, 0.2 + 0.14, 0.05 + 0.10 + 1e-3], atol=5e-3)
    finally:
        scene.close()


def test_room_height_is_respected(room_proxy):
    _, proxy = room_proxy
    vertices, _ = proxy.obstacle_mesh
    # The TSDF surface may reach up to 3 voxels past an open edge (median depth puts the top row of wall splats at
    # their centres' depth, so it reaches the third grid plane: 1e-4 covers the float32 grid's rounding).
    from lyra_sim.physics.walls import WALL_THICKNESS_M

    margin = 3 * proxy.info["voxel_size"] + 1e-4
    assert vertices[:, 2].max() <= ROOM_Z + margin
    margin += WALL_THICKNESS_M  # the side walls are boxes of real thickness behind their fronts
    assert vertices[:, 1].min() >= ROOM_Y[0] - margin and vertices[:, 1].max() <= ROOM_Y[1] + margin


def test_moved_views_see_the_moved_world_at_the_same_pixels():
    rng = np.random.default_rng(3)
    points = rng.uniform(-1, 1, (50, 3)) + np.array([0.0, 0.0, 4.0])
    world_to_cam = np.eye(4)
    world_to_cam[:3, :3] = o3d.geometry.get_rotation_matrix_from_xyz((0.1, -0.2, 0.3))
    world_to_cam[:3, 3] = [0.2, -0.1, 0.5]
    rotation = o3d.geometry.get_rotation_matrix_from_xyz((-1.2, 0.4, 0.0))
    transform = np.eye(4)
    transform[:3, :3] = 2.5 * rotation  # x' = m R x + t with m = 2.5 metres per unit
    transform[:3, 3] = [1.0, 2.0, 0.7]
    depth = np.full((4, 4), 3.0)
    K = np.diag([100.0, 100.0, 1.0])
    [(moved_depth, moved_K, moved_world_to_cam)] = move_views([(depth, K, world_to_cam)], transform)
    homogeneous = np.c_[points, np.ones(len(points))]
    before = (world_to_cam @ homogeneous.T).T[:, :3]
    after = (moved_world_to_cam @ (transform @ homogeneous.T)).T[:, :3]
    np.testing.assert_allclose(after, 2.5 * before, atol=1e-9)  # same rays, distances in metres
    np.testing.assert_allclose(moved_depth, 7.5) and np.testing.assert_array_equal(moved_K, K)


def test_align_with_proxies_keeps_an_aligned_world_and_moves_measured_views(monkeypatch):
    calls = []
    monkeypatch.setattr("lyra_sim.physics.aligned.build_collision_proxy",
                        lambda world, **kw: calls.append((world, kw["extra_views"])) or "proxy")
    aligned = aligned_room(spacing=0.1)
    assert is_aligned(aligned) and not is_aligned(camera_view(surfels_world(room_surfaces(), spacing=0.1))[0])
    same, proxies = align_with_proxies(aligned)
    assert same is aligned and proxies == ["proxy"] and calls[-1] == (aligned, [])
    view, _ = camera_view(surfels_world(room_surfaces(), spacing=0.1))
    depth, K = np.full((2, 2), 1.5), np.eye(3)
    moved, _ = align_with_proxies(view, measured_views=[(depth, K, np.eye(4))])
    assert is_aligned(moved) and calls[-1][0] is moved
    [(moved_depth, _, moved_world_to_cam)] = calls[-1][1]
    camera_to_world = np.asarray(moved.info["alignment"]["camera_to_world"])
    np.testing.assert_allclose(moved_world_to_cam @ camera_to_world, np.eye(4), atol=1e-6)  # the input camera
    np.testing.assert_allclose(moved_depth, depth)  # a metric world keeps its depths


def test_cli_export_usd_collision_auto_aligns_and_adds_the_proxy(tmp_path, capsys):
    from pxr import Usd, UsdGeom, UsdPhysics

    from lyra_sim.cli import main
    from lyra_sim.io import save_world

    view, _ = camera_view(surfels_world(room_surfaces(), spacing=0.1))  # OpenCV frame, as generated
    source = save_world(view, tmp_path / "room.safetensors")
    out = tmp_path / "room.usda"
    assert main(["export-usd", str(source), str(out), "--collision", "auto"]) == 0
    printed = capsys.readouterr().out
    assert "aligned: floor at z = 0, scale from" in printed and "collision proxy:" in printed
    assert "collider vs picture: median" in printed
    stage = Usd.Stage.Open(str(out))
    agreement = stage.GetRootLayer().customLayerData["lyra_sim:colliderAgreement"]
    assert 0.0 <= agreement["within_5cm"] <= 1.0 and agreement["rays"] > 1000
    collision = stage.GetPrimAtPath("/World/Collision")
    assert collision.HasAPI(UsdPhysics.CollisionAPI)
    assert UsdGeom.GetStageUpAxis(stage) == UsdGeom.Tokens.z
    points = np.asarray(UsdGeom.Mesh(collision).GetPointsAttr().Get())
    # floor box (0.2 m thick, top at z = 0) to ceiling
    assert points[:, 2].min() == pytest.approx(-0.2, abs=0.05) and points[:, 2].max() == pytest.approx(ROOM_Z, abs=0.15)


def test_bullet_rgbd_intrinsics_place_every_pixel_of_a_tilted_plane():
    """The K that comes with TinyRenderer's images sends each pixel's centre ray (the package's convention) to the
    depth it rendered: a plane tilted about both image axes pins the principal point in x and in y (a centred K
    is half a pixel off in both: millimetres to centimetres of depth error here)."""
    import pybullet as p

    from lyra_sim.camera import pixel_directions
    from lyra_sim.physics.bullet_camera import render_rgbd

    normal = np.array([0.3, 0.5, 0.81]) / np.linalg.norm([0.3, 0.5, 0.81])
    eye, target = np.array([0.2, -0.3, 2.0]), np.zeros(3)
    client = p.connect(p.DIRECT)
    try:
        slab = p.createCollisionShape(p.GEOM_BOX, halfExtents=[5.0, 5.0, 0.01], physicsClientId=client)
        look = p.createVisualShape(p.GEOM_BOX, halfExtents=[5.0, 5.0, 0.01], physicsClientId=client)
        axis = np.cross([0.0, 0.0, 1.0], normal)  # the slab's top face turned onto the plane through the origin
        turn = p.getQuaternionFromAxisAngle((axis / np.linalg.norm(axis)).tolist(), float(np.arccos(normal[2])))
        p.createMultiBody(0, slab, look, (-0.01 * normal).tolist(), turn, physicsClientId=client)
        sizes = [(64, 48), (97, 61)]
        renders = [render_rgbd(client, w, h, eye, target, 60.0, 0.1, 10.0, up=(0.0, 1.0, 0.0)) for w, h in sizes]
    finally:
        p.disconnect(client)
    forward = (target - eye) / np.linalg.norm(target - eye)
    right = np.cross(forward, [0.0, 1.0, 0.0])
    right /= np.linalg.norm(right)
    cam_to_world = np.stack([right, np.cross(forward, right), forward], axis=1)  # OpenCV axes: x right, y down
    for (width, height), (_, depth, K) in zip(sizes, renders, strict=True):
        rays = pixel_directions(torch.from_numpy(K), height, width).numpy() @ cam_to_world.T  # z-depth 1 rays
        expected = -(eye @ normal) / (rays @ normal)  # the plane through the origin: (eye + t ray) . n = 0
        hit = depth > 0
        assert hit.mean() > 0.9
        np.testing.assert_allclose(depth[hit], expected[hit], atol=2e-4)


def test_bullet_rgbd_gives_metric_z_depth_of_a_wall():
    import pybullet as p

    from lyra_sim.physics.bullet_camera import depth_from_zbuffer, render_rgbd

    client = p.connect(p.DIRECT)
    try:
        wall = p.createCollisionShape(p.GEOM_BOX, halfExtents=[0.05, 5.0, 5.0], physicsClientId=client)
        look = p.createVisualShape(p.GEOM_BOX, halfExtents=[0.05, 5.0, 5.0], rgbaColor=[1, 0, 0, 1],
                                   physicsClientId=client)
        p.createMultiBody(0, wall, look, [3.0, 0.0, 1.0], physicsClientId=client)
        rgb, depth, K = render_rgbd(client, 40, 30, (0.0, 0.0, 1.0), (1.0, 0.0, 1.0), 60.0, 0.05, 20.0)
        _, away, _ = render_rgbd(client, 40, 30, (0.0, 0.0, 1.0), (-1.0, 0.0, 1.0), 60.0, 0.05, 20.0)
    finally:
        p.disconnect(client)
    np.testing.assert_allclose(depth, 2.95, rtol=1e-3)  # a fronto-parallel wall: the same z-depth everywhere
    assert rgb.shape == (30, 40, 3) and rgb[..., 0].min() > rgb[..., 1].max()  # red
    assert (away == 0).all()  # nothing hit
    np.testing.assert_allclose(K, [[15 * np.sqrt(3), 0, 20.5], [0, 15 * np.sqrt(3), 14.5], [0, 0, 1]])
    np.testing.assert_allclose(depth_from_zbuffer(np.array([0.0, 1.0]), 0.1, 10.0), [0.1, 0.0])
