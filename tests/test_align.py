"""Alignment on synthetic scenes with a known floor, tilt and scale."""

import math

import numpy as np
import pytest
import torch

from lyra_sim import DynamicGaussianWorld
from lyra_sim.align import align_world, find_floor
from lyra_sim.synthetic.gaussian_rooms import BOX_MAX, CAMERA_EYE, camera_view, room_surfaces, surfels_world
from lyra_sim.world import WorldError


@pytest.fixture(scope="module")
def room():
    return surfels_world(room_surfaces(), spacing=0.05)


def true_up_after(report, world_to_cam):
    """Where the true up direction (0, 0, 1) of the room ends up after the alignment."""
    up_in_camera = world_to_cam[:3, :3].numpy() @ np.array([0.0, 0.0, 1.0])
    mapped = np.asarray(report["transform"])[:3, :3] @ up_in_camera
    return mapped / np.linalg.norm(mapped)


@pytest.mark.parametrize(("roll", "scale"), [(0.0, 1.0), (6.0, 0.37), (-4.0, 2.5)])
def test_floor_normal_and_scale_recovered(room, roll, scale):
    view, world_to_cam = camera_view(room, roll_deg=roll, scale=scale)
    aligned = align_world(view, camera_height=CAMERA_EYE[2])
    report = aligned.info["alignment"]
    up = true_up_after(report, world_to_cam)
    assert math.degrees(math.acos(up[2])) < 2.0
    assert report["meters_per_unit"] * scale == pytest.approx(1.0, rel=0.05)
    # Floor surfels land on z = 0, the camera where it was.
    floor_count = len(surfels_world(room_surfaces()[:1], spacing=0.05))  # the floor's surfels come first
    assert aligned.frame == "z_up" and aligned.meters_per_unit == 1.0
    assert aligned.means[:floor_count, 2].abs().max() < 0.01
    camera = np.asarray(report["camera_to_world"])
    assert camera[:3, 3] == pytest.approx([0.0, 0.0, CAMERA_EYE[2]], abs=0.05)
    assert camera[:3, 2] @ [1, 0, 0] > 0.9  # the camera looks along +x
    expected_source = "metric world" if scale == 1.0 else "camera height 1.3 m assumed"
    assert report["scale_source"] == expected_source


def test_metric_world_keeps_its_scale_and_reports_tilt(room):
    view, _ = camera_view(room)
    aligned = align_world(view)
    report = aligned.info["alignment"]
    pitch = math.degrees(math.atan2(CAMERA_EYE[2] - 0.4, 3.0 - CAMERA_EYE[0]))
    assert report["camera_tilt_deg"] == pytest.approx(pitch, abs=1.0)
    assert report["camera_height_m"] == pytest.approx(CAMERA_EYE[2], abs=0.02)
    # The box top stays at its true height.
    top = aligned.means[(aligned.means[:, 2] > BOX_MAX[2] - 0.05) & (aligned.means[:, 2] < BOX_MAX[2] + 0.05)]
    assert len(top) > 0 and top[:, 2].mean().item() == pytest.approx(BOX_MAX[2], abs=0.02)


def test_unknown_scale_without_height_assumes_default_and_says_so(room):
    view, _ = camera_view(room, scale=0.5)
    report = align_world(view).info["alignment"]
    assert report["camera_height_m"] == pytest.approx(1.2)
    assert "assumed" in report["notes"][0]
    report = align_world(view, scale=2.0).info["alignment"]
    assert report["scale_source"] == "given" and report["camera_height_m"] == pytest.approx(CAMERA_EYE[2], abs=0.02)


def test_large_table_top_does_not_win_over_the_floor():
    """A table top with more Gaussians than the visible floor: the floor is the lowest supported plane."""
    planes = room_surfaces(with_box=False)[:1]  # floor only
    floor = surfels_world(planes, spacing=0.1)
    table = surfels_world([(np.array([1.0, -1.2, 0.7]), np.array([2.5, 0, 0]), np.array([0, 2.4, 0]),
                            np.array([0, 0, 1.0]))], spacing=0.04)
    assert len(table) > 2 * len(floor)
    from lyra_sim import GaussianWorld

    view, _ = camera_view(GaussianWorld.concatenate([floor, table]))
    plane = find_floor(view)
    aligned = align_world(view)
    assert aligned.info["alignment"]["camera_height_m"] == pytest.approx(CAMERA_EYE[2], abs=0.03)
    assert plane.inlier_fraction < 0.5


def test_dynamic_world_uses_one_transform(room):
    view, _ = camera_view(room, scale=0.8)
    moved = view.transformed(translation=torch.tensor([0.01, 0.0, 0.0]))
    aligned = align_world(DynamicGaussianWorld([0.0, 1.0], [view, moved]), camera_height=1.3)
    a, b = aligned.worlds
    assert a.info["alignment"]["transform"] == b.info["alignment"]["transform"]


def test_no_floor_is_a_clear_error():
    wall = surfels_world([(np.array([3.0, -1, 0]), np.array([0, 2.0, 0]), np.array([0, 0, 2.0]),
                           np.array([-1.0, 0, 0]))], spacing=0.1)
    view, _ = camera_view(wall, target=(3.0, 0.0, 1.3))
    with pytest.raises(WorldError, match="no plane"):
        align_world(view, max_tilt_deg=20)


def test_alignment_reuses_the_floor_completion_found_and_it_is_the_floor_ransac_finds(monkeypatch, tmp_path):
    """A generated world records the floor its completion was built on; align_world takes it instead of a
    second RANSAC on the completed world, and that plane is the one RANSAC finds on the lifted input pixels."""
    from conftest import small_example

    import lyra_sim.align as align_module
    from lyra_sim.generate import generate_world
    from lyra_sim.synthetic.tabletop import CAMERA_EYE as EYE

    rgb, depth, intrinsics = small_example(tmp_path, size=(96, 72))
    world = generate_world(str(rgb), depth=str(depth), intrinsics=str(intrinsics))
    recorded = world.info["completion"]["floor"]
    fresh = find_floor(generate_world(str(rgb), depth=str(depth), intrinsics=str(intrinsics), complete=False))
    assert np.degrees(np.arccos(np.clip(np.dot(recorded["normal"], fresh.normal), -1, 1))) < 1.0
    assert abs(recorded["offset"] - fresh.offset) < 0.01 * recorded["offset"]

    def no_second_ransac(*args, **kwargs):
        raise AssertionError("align_world searched for the floor again")

    monkeypatch.setattr(align_module, "find_floor", no_second_ransac)
    aligned = align_world(world)
    assert aligned.alignment.camera_height_m == pytest.approx(EYE[2], abs=0.03)  # the example camera: 1.25 m up
