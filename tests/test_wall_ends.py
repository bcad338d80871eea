"""Invented walls end where the camera saw them end, and the floor continues past the end (single_view.completion)."""

import numpy as np
import pytest

from lyra_sim import generate_world
from lyra_sim.camera import look_at_matrix
from lyra_sim.single_view.completion import CompletionOptions

W, H = 128, 96
K = np.array([[100.0, 0, W / 2], [0, 100.0, H / 2], [0, 0, 1]])
EYE, TARGET = np.array([0.0, 0.0, 1.2]), np.array([3.0, 0.0, 0.6])
END_Y = 0.8  # wall A's left end (+y is left), inside the image; its right end (y = -5) is outside it
WALLS = {  # name: (lo corner, hi corner, colour)
    "A": (np.array([3.0, -5.0, 0.0]), np.array([3.1, END_Y, 2.0]), (0.7, 0.62, 0.5)),
    "B": (np.array([6.0, -10.0, 0.0]), np.array([6.1, 10.0, 3.5]), (0.55, 0.6, 0.7)),  # seen past A's end
}


def ray_cast(walls=WALLS):
    """RGB (H,W,3) and z-depth of a checkered floor and ``walls`` (default: wall A, 2 m high, ending at y = END_Y,
    and wall B behind it)."""
    w2c = look_at_matrix(EYE, TARGET, up=(0, 0, 1)).double().numpy()
    v, u = np.meshgrid(np.arange(H) + 0.5, np.arange(W) + 0.5, indexing="ij")
    rays = np.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], np.ones_like(u)], -1) @ w2c[:3, :3]
    with np.errstate(divide="ignore", invalid="ignore"):
        depth = np.where(rays[..., 2] < 0, -EYE[2] / rays[..., 2], np.inf)
        hit = EYE + rays * depth[..., None]
        checker = (np.floor(hit[..., 0] / 0.5) + np.floor(hit[..., 1] / 0.5)) % 2
        rgb = np.where(checker[..., None] > 0, [0.8, 0.8, 0.78], [0.4, 0.45, 0.5])
        for lo, hi, colour in walls.values():
            t0, t1 = (lo - EYE) / rays, (hi - EYE) / rays
            near, far = np.nanmax(np.minimum(t0, t1), -1), np.nanmin(np.maximum(t0, t1), -1)
            t = np.where((near <= far) & (near > 0), near, np.inf)
            rgb = np.where((t < depth)[..., None], colour, rgb)
            depth = np.minimum(depth, t)
    assert np.isfinite(depth).all()
    return rgb.astype(np.float32), depth.astype(np.float32), w2c


@pytest.fixture(scope="module")
def scene():
    rgb, depth, w2c = ray_cast()
    world = generate_world(rgb, depth=depth, intrinsics=K)
    c2w = np.linalg.inv(w2c)
    points = world.means.double().numpy() @ c2w[:3, :3].T + c2w[:3, 3]  # z-up scene frame
    return world, points, c2w


def test_a_wall_seen_ending_is_invented_at_most_a_margin_past_its_end(scene):
    world, points, c2w = scene
    planes = world.info["completion"]["wall_planes"]
    distances = [abs(p["offset"]) for p in planes]
    wall_a = planes[int(np.argmin(distances))]
    assert wall_a["ends_seen"].count(True) == 1  # the left end is seen; the right one is cut off by the image
    seen_end = np.asarray(wall_a["ends"][wall_a["ends_seen"].index(True)]) @ c2w[:3, :3].T + c2w[:3, 3]
    assert seen_end[1] == pytest.approx(END_Y, abs=0.15) and seen_end[2] == pytest.approx(0.0, abs=0.05)
    invented = ~world.observed.numpy()
    on_a = invented & (np.abs(points[:, 0] - 3.0) < 0.05) & (points[:, 2] > 0.2)
    assert on_a.sum() > 100
    assert points[on_a, 1].max() < END_Y + 0.2  # ends at the seen end (a few centimetres of margin)
    assert points[on_a, 1].min() < -3.0  # the end the image cut off: continued (its end is unknown)


def test_the_floor_continues_past_the_end_of_a_wall(scene):
    world, points, _ = scene
    invented = ~world.observed.numpy()
    # Behind wall A's plane but past its end, outside the image (the camera sees y < 2 there at most).
    past_end = (invented & (np.abs(points[:, 2]) < 0.02) & (points[:, 0] > 3.5) & (points[:, 0] < 5.5)
                & (points[:, 1] > 2.5) & (points[:, 1] < 4.0))
    behind = (invented & (np.abs(points[:, 2]) < 0.02) & (points[:, 0] > 3.5) & (points[:, 0] < 5.5)
              & (points[:, 1] > -3.0) & (points[:, 1] < -1.5))
    assert past_end.sum() > 50  # floor past the end (the old infinite wall left none here)
    assert behind.sum() == 0  # and none behind the wall itself


def test_a_partition_seen_for_less_than_a_camera_height_is_a_wall():
    """A partition at the image's left edge, seen for 0.8 m (the camera is 1.2 m high), ending in the image: a wall
    from half a camera height wide (issue 11's one camera height left it to the object backs), continued off-image
    to the left and ended at its seen end."""
    walls = {"partition": (np.array([3.0, 1.1, 0.0]), np.array([3.1, 6.0, 2.0]), (0.55, 0.62, 0.7)),
             "back": WALLS["B"]}
    rgb, depth, w2c = ray_cast(walls)
    c2w = np.linalg.inv(w2c)
    for min_width, expected in ((1.0, 1), (0.5, 2)):
        world = generate_world(rgb, depth=depth, intrinsics=K,
                               completion=CompletionOptions(wall_min_width=min_width))
        assert world.info["completion"]["walls"] == expected
    points = world.means.double().numpy() @ c2w[:3, :3].T + c2w[:3, 3]
    on = ~world.observed.numpy() & (np.abs(points[:, 0] - 3.0) < 0.05) & (points[:, 2] > 0.2)
    assert points[on, 1].min() > 1.1 - 0.2 and points[on, 1].max() > 4.0


# ------------------------------------------------------------- planes the camera sees past are no walls (issues 21, 24)

SHELF_FRONT, SHELF_BACK, SHELF_HALF, SHELF_TOP = 2.0, 2.36, 0.6, 1.8
BOARDS_Z = [0.02 + 0.42 * k for k in range(5)]  # bottoms of the 5 cm boards


def shelf_walls() -> dict:
    """A shelf (front x = 2.0, y -0.6..0.6, 1.8 m high: 5 cm boards, 6 cm side panels, a back panel at x = 2.36)
    before a back wall at x = 4: the board and side-panel fronts form a plane the camera sees the back panel
    through, and the back panel ends behind the side panels, where the camera sees the back wall beside them."""
    walls = {"back wall": (np.array([4.0, -6.0, 0.0]), np.array([4.1, 6.0, 3.0]), (0.8, 0.8, 0.75)),
             "panel": (np.array([SHELF_BACK, -SHELF_HALF, 0.0]), np.array([SHELF_BACK + 0.02, SHELF_HALF, SHELF_TOP]),
                       (0.45, 0.3, 0.2))}
    for side in (-1, 1):
        walls[f"side {side}"] = (np.array([SHELF_FRONT, side * SHELF_HALF - 0.03, 0.0]),
                                 np.array([SHELF_BACK, side * SHELF_HALF + 0.03, SHELF_TOP]), (0.5, 0.35, 0.2))
    for k, z in enumerate(BOARDS_Z):
        walls[f"board {k}"] = (np.array([SHELF_FRONT, -SHELF_HALF, z]), np.array([SHELF_BACK, SHELF_HALF, z + 0.05]),
                               (0.65, 0.5, 0.3))
    return walls


def scene_planes(world, c2w) -> list[tuple[float, list]]:
    """(x of the plane in the scene frame, its ends in the scene frame (None: runs on)) of each x-facing wall record."""
    out = []
    for plane in world.info["completion"]["wall_planes"]:
        normal = c2w[:3, :3] @ np.asarray(plane["normal"])
        assert abs(abs(normal[0]) - 1) < 0.02, normal  # every wall of these scenes faces the camera along x
        ends = [None if e is None else c2w[:3, :3] @ np.asarray(e) + c2w[:3, 3] for e in plane["ends"]]
        out.append(((normal @ c2w[:3, 3] - plane["offset"]) / normal[0], ends))
    return sorted(out, key=lambda p: p[0])


@pytest.fixture(scope="module")
def shelf():
    rgb, depth, w2c = ray_cast(shelf_walls())
    world = generate_world(rgb, depth=depth, intrinsics=K)
    return world, depth, w2c


def test_furniture_fronts_are_no_wall_and_a_panel_ends_where_the_camera_sees_past_it(shelf):
    world, _, w2c = shelf
    c2w = np.linalg.inv(w2c)
    planes = scene_planes(world, c2w)
    xs = [x for x, _ in planes]
    # The old completion made the board fronts (x = 2.0) a wall and ran the back panel on sideways without end.
    assert not any(abs(x - SHELF_FRONT) < 0.1 for x in xs), xs
    assert any(abs(x - 4.0) < 0.05 for x in xs), xs  # the back wall is kept
    panels = [ends for x, ends in planes if abs(x - SHELF_BACK) < 0.05]
    for ends in panels:  # a wall record for the back panel may stay, but it ends beside the side panels
        assert all(e is not None for e in ends), ends
        assert sorted(abs(e[1]) for e in ends)[-1] < SHELF_HALF + 0.25, ends
    points = world.means.double().numpy() @ c2w[:3, :3].T + c2w[:3, 3]
    invented = ~world.observed.numpy()
    on_panel_plane = invented & (np.abs(points[:, 0] - SHELF_BACK) < 0.03) & (points[:, 2] > 0.2)
    assert not (on_panel_plane & (np.abs(points[:, 1]) > SHELF_HALF + 0.3)).any()


def test_the_collider_has_no_wall_box_before_the_shelf_or_beside_it(shelf):
    from lyra_sim.align import align_world
    from lyra_sim.physics.aligned import move_views
    from lyra_sim.physics.proxy import build_collision_proxy
    from lyra_sim.physics.raycast import cast_rays

    world, depth, w2c = shelf
    aligned = align_world(world)
    transform = np.asarray(aligned.info["alignment"]["transform"])
    views = move_views([(depth, K, np.eye(4))], transform)
    proxy = build_collision_proxy(aligned, extra_views=views, progress=False, agreement=False)
    to_aligned = transform @ w2c  # scene frame -> the input camera's frame -> the aligned world
    origins = np.array([[0.5, 0.2, 1.13], [0.5, 0.0, 1.0]])
    targets = np.array([[3.0, 0.2, 1.13], [4.0, 3.0, 1.0]])  # between two boards; past the shelf's side, off-image
    directions = (targets - origins) / np.linalg.norm(targets - origins, axis=1, keepdims=True)
    hit = cast_rays(proxy.vertices, proxy.faces, origins @ to_aligned[:3, :3].T + to_aligned[:3, 3],
                    directions @ to_aligned[:3, :3].T)
    # Through the gap to the back panel (the old collider had the panel's wall box run on beside the shelf).
    assert hit[0] == pytest.approx(SHELF_BACK - 0.5, abs=0.05)
    assert hit[1] == pytest.approx((4.0 - 0.5) / directions[1, 0], abs=0.1)  # on to the back wall


def test_a_rack_front_before_a_wall_merges_into_the_wall():
    """Three 0.8 m wide, 2 m high cabinets 0.3 m before a wall with gaps between them: RANSAC finds their fronts'
    plane too; it is seen past only in the gaps (under half its span), but the wall behind is seen over the same
    stretch, so the two near-parallel planes are one wall, the farther."""
    walls = {"wall": (np.array([4.0, -6.0, 0.0]), np.array([4.1, 6.0, 3.0]), (0.7, 0.7, 0.68))}
    for k, y in enumerate((-1.4, -0.3, 0.8)):
        walls[f"cabinet {k}"] = (np.array([3.7, y, 0.0]), np.array([4.0, y + 0.8, 2.0]), (0.5, 0.4, 0.3))
    rgb, depth, w2c = ray_cast(walls)
    world = generate_world(rgb, depth=depth, intrinsics=K)
    xs = [x for x, _ in scene_planes(world, np.linalg.inv(w2c))]
    assert len(xs) == 1 and xs[0] == pytest.approx(4.0, abs=0.05), xs
