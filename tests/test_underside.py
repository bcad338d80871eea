"""The invented underside of a table top is shaded like an underside, not lit like a second top.

Known geometry: the bundled example's PyBullet scene (a table top 5 cm thick whose underside is 0.574 m up),
lifted from its tabletop camera; a robot camera 15 cm up under the table looks up at the underside, and
PyBullet's render of the true scene from there is the reference.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lyra_sim.camera import Camera, look_at_matrix
from lyra_sim.generate import generate_world
from lyra_sim.physics.bullet_camera import render_rgbd
from lyra_sim.physics.pybullet_quiet import import_pybullet
from lyra_sim.rendering import render
from lyra_sim.single_view.backs import UNDERSIDE_AMBIENT, underside_shade
from lyra_sim.single_view.completion import CompletionOptions
from lyra_sim.synthetic.tabletop import CAMERA_EYE, CAMERA_TARGET, LIGHT, build_scene

p = import_pybullet()
VFOV, NEAR, FAR = 50.0, 0.05, 20.0
ROBOT_EYE, ROBOT_TARGET = (0.35, 0.0, 0.15), (1.0, 0.0, 0.6)  # under the table, looking up along it


def _cv_world_to_cam(eye, target) -> np.ndarray:
    return look_at_matrix(eye, target, up=(0, 0, 1)).double().numpy()


@pytest.fixture(scope="module")
def under_table():
    """Truth and the renders of the default world and of one without underside shading, under the table."""
    client = p.connect(p.DIRECT)
    try:
        build_scene(client)
        table = next(b for b in range(p.getNumBodies(physicsClientId=client))
                     if p.getBodyInfo(b, physicsClientId=client)[1] == b"table.urdf")
        bottom = p.getAABB(table, -1, physicsClientId=client)[0][2]
        rgb, depth, K_in = render_rgbd(client, 160, 120, CAMERA_EYE, CAMERA_TARGET, VFOV, NEAR, FAR, light=LIGHT)
        truth, truth_depth, K = render_rgbd(client, 96, 72, ROBOT_EYE, ROBOT_TARGET, VFOV, NEAR, FAR, light=LIGHT)
    finally:
        p.disconnect(client)
    truth = truth.astype(np.float32) / 255
    w2c_in, w2c = _cv_world_to_cam(CAMERA_EYE, CAMERA_TARGET), _cv_world_to_cam(ROBOT_EYE, ROBOT_TARGET)
    h, w = truth_depth.shape
    v, u = np.mgrid[0:h, 0:w]
    rays = np.stack([(u + 0.5 - K[0, 2]) / K[0, 0], (v + 0.5 - K[1, 2]) / K[1, 1], np.ones((h, w))], axis=-1)
    c2w = np.linalg.inv(w2c)
    height = ((rays * truth_depth[..., None]) @ c2w[:3, :3].T + c2w[:3, 3])[..., 2]
    underside = (truth_depth > 0) & (np.abs(height - bottom) < 0.01)
    camera = Camera(torch.from_numpy(K).float(), torch.from_numpy(w2c @ np.linalg.inv(w2c_in)).float(), w, h)
    seen_top = _top_pixels(rgb, depth, K_in, w2c_in, bottom)
    images = {}
    for tag, options in (("shaded", CompletionOptions()), ("lit", CompletionOptions(shade_undersides=False))):
        world = generate_world(rgb, depth=depth, intrinsics=K_in, completion=options)
        with torch.no_grad():
            images[tag] = render(world, camera, background=(1.0, 1.0, 1.0)).rgb.reshape(h, w, 3).numpy()
    return truth, underside, images, seen_top


def _top_pixels(rgb: np.ndarray, depth: np.ndarray, K: np.ndarray, w2c: np.ndarray, bottom: float) -> np.ndarray:
    """The input image's colours (M,3) of the table top's upper face (5 cm above its underside)."""
    h, w = depth.shape
    v, u = np.mgrid[0:h, 0:w]
    rays = np.stack([(u + 0.5 - K[0, 2]) / K[0, 0], (v + 0.5 - K[1, 2]) / K[1, 1], np.ones((h, w))], axis=-1)
    c2w = np.linalg.inv(w2c)
    height = ((rays * depth[..., None]) @ c2w[:3, :3].T + c2w[:3, 3])[..., 2]
    return rgb[(depth > 0) & (np.abs(height - bottom - 0.052) < 0.005)].astype(np.float32) / 255


def test_the_invented_underside_is_darker_than_the_seen_top_and_near_the_truth(under_table):
    truth, underside, images, seen_top = under_table
    assert underside.mean() > 0.5  # the camera looks at the underside
    top = float(seen_top.mean())
    shaded, lit = float(images["shaded"][underside].mean()), float(images["lit"][underside].mean())
    true = float(truth[underside].mean())
    assert lit > 0.9 * top  # without shading the underside has the top's lit colour (main's behaviour) ...
    assert shaded < 0.8 * top  # ... with it, it is clearly darker than the seen top
    assert abs(shaded - true) < 0.05 < abs(lit - true)  # and close to the true underside's brightness


def test_underside_shade_takes_the_darkest_seen_side_faces_and_caps_at_ambient():
    up = np.array([0.0, -1.0, 0.0])  # camera frame: y down
    h, w = 20, 40
    normals = np.zeros((h, w, 3))
    normals[:, :20] = up  # a top
    normals[:, 20:30] = [1.0, 0.0, 0.0]  # a side facing +x
    normals[:, 30:] = [0.0, 0.0, -1.0]  # a side facing the camera
    field = np.full((h, w, 3), 0.5)
    rgb = np.full((h, w, 3), 0.8)
    objects = np.ones((h, w), bool)
    assert underside_shade(rgb, field, normals, objects, up) == pytest.approx(UNDERSIDE_AMBIENT)  # all lit alike
    rgb[:, 20:30] = 0.4  # the +x side in shadow: half as bright as the top
    assert underside_shade(rgb, field, normals, objects, up) == pytest.approx(0.5)
    rgb[:, 20:30] = 0.1  # never darker than the floor of the range
    assert underside_shade(rgb, field, normals, objects, up) == pytest.approx(0.35)
