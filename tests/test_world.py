import math

import pytest
import torch
from conftest import random_world

from lyra_sim import DynamicGaussianWorld, GaussianWorld
from lyra_sim.rotations import quat_to_rotmat, rotmat_to_quat
from lyra_sim.sh import eval_sh_colors
from lyra_sim.world import WorldError


def rotation_about(axis, angle):
    axis = torch.tensor(axis, dtype=torch.float64)
    axis = axis / axis.norm()
    x, y, z = axis
    k = torch.tensor([[0, -z, y], [z, 0, -x], [-y, x, 0]], dtype=torch.float64)
    return (torch.eye(3, dtype=torch.float64) + math.sin(angle) * k + (1 - math.cos(angle)) * k @ k).float()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"means": torch.zeros(3, 2)}, "means"),
        ({"quats": torch.zeros(3, 3)}, "quats"),
        ({"sh": torch.zeros(3, 2, 3)}, "not a square"),
        ({"opacities": torch.full((3,), 1.5)}, "opacities"),
        ({"scales": -torch.ones(3, 3)}, "scales"),
        ({"means": torch.tensor([[0, 0, float("nan")]] * 3)}, "means: 3 non-finite"),
        ({"quats": torch.zeros(3, 4)}, "zero-length"),
        ({"frame": "y_up"}, "frame"),
    ],
)
def test_validation_names_the_bad_input(kwargs, message):
    good = {"means": torch.zeros(3, 3), "quats": torch.tensor([[1.0, 0, 0, 0]] * 3), "scales": torch.ones(3, 3),
            "opacities": torch.ones(3) * 0.5, "sh": torch.zeros(3, 1, 3)}  # fmt: skip
    good.update(kwargs)
    with pytest.raises(WorldError, match=message):
        GaussianWorld(**good)


def test_numpy_inputs_and_quaternion_normalisation():
    world = GaussianWorld(torch.zeros(1, 3).numpy(), [[2.0, 0, 0, 0]], [[1, 1, 1]], [0.5], [[[0, 0, 0]]])
    assert torch.equal(world.quats, torch.tensor([[1.0, 0, 0, 0]]))
    assert world.means.dtype == torch.float32


def test_prune_keeps_top_fraction_by_opacity():
    world = GaussianWorld.from_rgb(
        torch.zeros(10, 3), torch.zeros(10, 3), torch.ones(10, 3), torch.linspace(0, 0.9, 10)
    )
    pruned = world.prune(keep_fraction=0.2)  # Lyra's "prune 0.8"
    assert torch.allclose(pruned.opacities, torch.tensor([0.8, 0.9]))
    assert len(world.prune(min_opacity=0.45)) == 5


def test_transform_rotates_covariances_and_sh():
    world = random_world(n=20, sh_degree=3)
    rot = rotation_about([1, 2, 3], 0.7)
    moved = world.transformed(rot, translation=[1, 2, 3], scale=2.0)
    torch.testing.assert_close(moved.means, 2 * world.means @ rot.T + torch.tensor([1.0, 2, 3]))

    def cov(w):
        r = quat_to_rotmat(w.quats)
        return r @ torch.diag_embed(w.scales**2) @ r.transpose(1, 2)

    torch.testing.assert_close(cov(moved), 4 * rot @ cov(world) @ rot.T, atol=1e-5, rtol=1e-4)
    # the colour seen along direction d before equals the colour along R d after
    dirs = torch.randn(20, 3)
    torch.testing.assert_close(
        eval_sh_colors(moved.sh, dirs @ rot.T), eval_sh_colors(world.sh, dirs), atol=1e-4, rtol=1e-4
    )


def test_transform_rejects_reflections_and_tracks_scale():
    world = random_world(n=3)
    world.meters_per_unit = 1.0
    assert world.transformed(scale=2.0).meters_per_unit == 0.5
    with pytest.raises(WorldError, match="rotation"):
        world.transformed(torch.diag(torch.tensor([1.0, 1.0, -1.0])))


def test_rotmat_quat_round_trip():
    q = torch.randn(100, 4, dtype=torch.float64)
    q = q / q.norm(dim=-1, keepdim=True)
    q = q * torch.where(q[:, :1] < 0, -1.0, 1.0)
    torch.testing.assert_close(rotmat_to_quat(quat_to_rotmat(q)), q)


def test_concatenate_subset_bounds_and_degree_padding():
    a, b = random_world(n=4, sh_degree=0), random_world(n=6, sh_degree=2, seed=1)
    both = GaussianWorld.concatenate([a, b])
    assert len(both) == 10 and both.sh_degree == 2
    assert torch.equal(both.sh[:4, 1:], torch.zeros(4, 8, 3))
    assert torch.equal(both.subset(slice(4, None)).means, b.means)
    lo, hi = both.bounds()
    assert torch.equal(lo, both.means.min(0).values) and torch.equal(hi, both.means.max(0).values)
    with pytest.raises(WorldError, match="frame"):
        GaussianWorld.concatenate([a, a.transformed(frame="z_up")])


def test_dynamic_world_picks_keyframes_deterministically():
    worlds = [random_world(n=3, seed=i) for i in range(3)]
    dyn = DynamicGaussianWorld([0.0, 1.0, 2.0], worlds)
    assert dyn.at(0.4) is worlds[0] and dyn.at(0.5) is worlds[0] and dyn.at(0.6) is worlds[1]
    assert dyn.at(-5) is worlds[0] and dyn.at(99) is worlds[2]
    with pytest.raises(WorldError, match="increasing"):
        DynamicGaussianWorld([1.0, 0.0], worlds[:2])
    with pytest.raises(WorldError, match="finite"):
        dyn.at(float("nan"))


def test_most_opaque_orders_by_opacity_and_prune_keeps_the_same_set():
    world = random_world(n=50, seed=4)
    world.opacities[[7, 8]] = 0.5  # a tie: the lower index comes first
    top = world.most_opaque(10)
    expected = sorted(range(50), key=lambda i: (-float(world.opacities[i]), i))[:10]
    assert torch.equal(top.opacities, world.opacities[expected])
    assert torch.equal(top.means, world.means[expected])
    pruned = world.prune(keep_fraction=0.2)  # the same ten, in the world's own order
    assert torch.equal(pruned.means, world.means[sorted(expected)])


def test_base_colour_round_trips_and_clamps():
    from lyra_sim.sh import rgb_to_sh0, sh0_to_rgb

    rgb = torch.tensor([[0.0, 0.25, 1.0], [0.5, 0.75, 0.1]])
    torch.testing.assert_close(sh0_to_rgb(rgb_to_sh0(rgb)), rgb)
    sh = torch.zeros(2, 4, 3)
    sh[:, 0] = torch.tensor([[5.0, -5.0, 0.0], [0.0, 0.0, 0.0]])
    sh[:, 1:] = 3.0  # higher bands do not change the base colour
    torch.testing.assert_close(sh0_to_rgb(sh), torch.tensor([[1.0, 0.0, 0.5], [0.5, 0.5, 0.5]]))
    world = GaussianWorld.from_rgb(torch.zeros(2, 3), rgb, torch.full((2, 3), 0.1), torch.ones(2))
    torch.testing.assert_close(world.rgb, rgb)


def test_first_keyframe():
    from lyra_sim.world import first_keyframe

    a, b = random_world(n=5, seed=1), random_world(n=6, seed=2)
    assert first_keyframe(a) is a
    assert first_keyframe(DynamicGaussianWorld([0.0, 1.0], [a, b])) is a
