"""``LyraSim/Navigate-v0``: drive a differential-drive robot to a goal in a generated world.

Physics is PyBullet on the world's collision proxy; the robot's camera sees the GAUSSIANS (rendered with
lyra_sim.render), not the proxy. :class:`NavigateEnv` documents the spaces, rewards and episode end.
"""

from __future__ import annotations

import math
from typing import ClassVar

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from gymnasium.error import ResetNeeded

from lyra_sim.camera import Camera
from lyra_sim.envs.options import SceneOptions, scene_kwargs
from lyra_sim.envs.scene import SimScene, prepare_scene
from lyra_sim.errors import LyraSimError
from lyra_sim.physics.bullet import BulletScene
from lyra_sim.rendering import DEFAULT_BACKGROUND, render
from lyra_sim.world import DynamicGaussianWorld

CONTROL_DT = 0.1  # seconds per env step
PROGRESS_REWARD = 10.0
STEP_COST = 0.01
GOAL_REWARD = 10.0
COLLISION_PENALTY = 5.0
NEAR_CAPTURE_M = 3.0  # start views are weighted by exp(-distance to the capture camera's foot / this, x robot scale)
START_SAMPLINGS = ("observed", "uniform")
MIN_START_VIEWS = 16  # when fewer scored views reach min_objects and min_observed, the bars drop to this many
#: The default ``min_objects``: the share of a start view's pixels that must show observed objects (not floor or wall;
#: lyra_sim.envs.room_structure), chosen from the trade-off in benchmarks/RESULTS.md ("Start views: observed share
#: against showing the objects").
MIN_OBJECTS = 0.05
DEPTH_FORMATS = ("metres", "uint8")
DEFAULT_MAX_DEPTH_M = 10.0  # depth observations are clipped here (times the robot scale)
SPEED_BOUND = 2.0  # the state's speed and yaw-rate bounds, in multiples of max_speed and max_turn


class ActionError(LyraSimError):
    """An action the env cannot apply (wrong shape, NaN or infinite values)."""


class NavigateEnv(gym.Env):
    """Point-goal navigation in a Gaussian world.

    ## Description
    A differential-drive robot (PyBullet, on the world's collision proxy) must reach a goal point on the
    floor. Its camera renders the Gaussians themselves, so what it sees is the generated world.

    ## Action Space
    ``Box(-1, 1, (2,), float32)``: forward speed and yaw rate as fractions of ``max_speed`` (m/s, times the
    robot scale) and ``max_turn`` (rad/s), held for 0.1 s of simulated time. Values outside [-1, 1] are
    clipped; non-finite ones raise ``ActionError`` and nothing moves.

    ## Observation Space
    ``Dict`` (every bound finite): ``rgb`` ``Box(0, 255, (H, W, 3), uint8)`` from the robot camera (W x H =
    ``image_size``); ``depth`` (H, W, 1) along the optical axis, 0 where no surface was rendered, clipped at
    ``max_depth`` metres (times the robot scale): with ``depth_format="metres"`` (default) ``Box(0, max_depth,
    float32)`` in metres; with ``"uint8"`` ``Box(0, 255, uint8)`` in steps of ``max_depth / 255`` metres (a
    surface reads at least 1), an image to stable-baselines3's ``is_image_space`` like ``rgb``; ``state``
    ``Box((6,), float32)``: x, y, cos yaw, sin yaw, forward speed, yaw rate (x, y within the free-space map's
    extent, speeds within twice ``max_speed`` / ``max_turn``; clipped there); ``goal`` ``Box((3,), float32)``:
    the goal's x, y in the robot frame (x forward, y left) and its distance, within the map's diagonal.

    ## Rewards
    10 per metre of progress towards the goal, -0.01 per step; +10 on reaching the goal; -5 on touching an
    obstacle.

    ## Starting State
    With ``start_sampling="observed"`` (default) a view scored at prepare time (``SimScene.view_scores``: the
    robot camera rendered in 16 headings from an even subsample of free cells and from every free cell around
    the best of them) that shows the place: at least ``min_objects`` of its pixels show observed objects (not
    floor or wall: ``lyra_sim.envs.room_structure``) and at least ``min_observed`` are observed at all (where
    fewer than 16 views pass, each bar drops to the 16th best view's share, the object bar first), preferring
    views near the capture camera, with its heading jittered within its 22.5 degree bin; the goal is a free cell
    of the same connected region, ``goal_distance`` metres away, in sight over free cells where one is, drawn
    with weight the squared observed share of the robot's view on arrival there (scored at prepare time).
    ``reset``'s info gives the start view's observed share as ``start_view_observed``. With ``"uniform"`` (or an
    unscored scene) a random free-space cell facing within
    90 degrees of the generating camera's heading and any free goal cell at that distance.

    ## Episode End
    Terminated when the goal is within ``goal_radius`` (times the robot scale) or the robot touches an
    obstacle. Truncation has one mechanism, gymnasium's ``TimeLimit``: after ``max_episode_steps`` steps, 200
    at registration, set by ``gymnasium.make("LyraSim/Navigate-v0", max_episode_steps=N)`` or ``make_env(...,
    max_episode_steps=N)``; the vector env wraps each robot in the same ``TimeLimit``. The env itself never
    truncates (built directly, ``NavigateEnv(...)`` runs until it terminates). Stepping an ended episode raises
    ``ResetNeeded``.

    ## Arguments
    ``source``: an image, an ``(rgb, depth_metres)`` pair (with ``intrinsics``), a world file, a world or a
    ``SimScene`` (``lyra_sim.envs.prepare_scene``; share one between vectorised copies). ``image_size``
    (width, height) and ``fov_deg`` of the robot camera; ``max_speed``, ``max_turn``;
    ``goal_distance`` (min, max metres); ``goal_radius``; ``render_mode`` ("rgb_array") and ``render_size``
    of ``render()``; ``scene_options`` go to ``prepare_scene``; ``camera_lod``: the robot camera's level of detail
    (``lyra_sim.render``'s ``lod``, pixels; None draws every Gaussian); ``start_sampling``, ``min_observed``,
    ``min_objects`` (Starting State); ``depth_format``, ``max_depth`` (Observation Space). ``camera_period``: the
    robot camera's refresh period in control steps, a sensor rate as in GaussGym (whose cameras refresh every
    2.5-7.5 control steps): the images are rendered at reset and every ``camera_period``-th step, and the steps
    between repeat the last images (default 1: every step). benchmarks/RESULTS.md ("Navigate-v0 simulation
    speed") has the steps/s of both.
    """

    metadata: ClassVar[dict] = {"render_modes": ["rgb_array"], "render_fps": int(1 / CONTROL_DT)}

    def __init__(self, source, intrinsics=None, image_size: tuple[int, int] = (96, 72), fov_deg: float = 90.0,
                 max_speed: float = 0.5, max_turn: float = 1.5,
                 goal_distance: tuple[float, float] = (0.5, 2.5), goal_radius: float = 0.25,
                 render_mode: str | None = "rgb_array", render_size: tuple[int, int] = (320, 240),
                 scene_options: SceneOptions | dict | None = None, camera_lod: float | None = None,
                 start_sampling: str = "observed", min_observed: float = 0.7, min_objects: float = MIN_OBJECTS,
                 depth_format: str = "metres",
                 max_depth: float = DEFAULT_MAX_DEPTH_M, camera_period: int = 1):
        super().__init__()
        if start_sampling not in START_SAMPLINGS:
            raise ValueError(f"start_sampling: expected one of {START_SAMPLINGS}, got {start_sampling!r}")
        if depth_format not in DEPTH_FORMATS:
            raise ValueError(f"depth_format: expected one of {DEPTH_FORMATS}, got {depth_format!r}")
        for name, share in (("min_observed", min_observed), ("min_objects", min_objects)):
            if not 0.0 <= share <= 1.0:
                raise ValueError(f"{name}: expected a share of pixels in [0, 1], got {share!r}")
        if not (math.isfinite(max_depth) and max_depth > 0):
            raise ValueError(f"max_depth: expected a positive number of metres, got {max_depth!r}")
        if isinstance(camera_period, bool) or int(camera_period) != camera_period or camera_period < 1:
            raise ValueError(f"camera_period: expected a positive whole number of control steps, got {camera_period!r}")
        self.camera_period = int(camera_period)
        self._images: dict | None = None  # the robot camera's last rgb and depth
        self.scene: SimScene = prepare_scene(source, intrinsics=intrinsics, **scene_kwargs(scene_options))
        self.start_sampling, self.min_observed, self.min_objects = start_sampling, min_observed, min_objects
        self.depth_format, self.max_depth = depth_format, max_depth * self.scene.robot_scale
        self.render_mode = render_mode
        self.max_speed, self.max_turn = max_speed, max_turn
        self.goal_distance, self.goal_radius = goal_distance, goal_radius
        width, height = image_size
        self.camera_K = Camera.intrinsics_from_fov(width, height, fov_deg)
        self.image_size, self.render_size = (width, height), render_size
        self.camera_lod = camera_lod
        self.render_K = Camera.intrinsics_from_fov(*render_size, fov_deg)
        self.bullet = BulletScene(self.scene.proxies[0], robot_scale=self.scene.robot_scale)
        self._keyframe = 0

        self.action_space = spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)
        free = self.scene.free_space
        extent = np.concatenate([free.origin, free.origin + np.array(free.free.shape) * free.cell])
        reach = float(np.abs(extent).max())  # |x|, |y| of any free cell
        span = float(np.linalg.norm(np.array(free.free.shape) * free.cell))  # the map's diagonal
        speed = SPEED_BOUND * max_speed * self.scene.robot_scale
        turn = SPEED_BOUND * max_turn
        self._state_bounds = np.array([reach, reach, 1.0, 1.0, speed, turn], np.float32)
        self._goal_bounds = np.array([span, span, span], np.float32)
        self.observation_space = spaces.Dict({
            "rgb": spaces.Box(0, 255, shape=(height, width, 3), dtype=np.uint8),
            "depth": (spaces.Box(0.0, self.max_depth, shape=(height, width, 1), dtype=np.float32)
                      if depth_format == "metres" else spaces.Box(0, 255, shape=(height, width, 1), dtype=np.uint8)),
            "state": spaces.Box(-self._state_bounds, self._state_bounds, dtype=np.float32),
            "goal": spaces.Box(np.array([-span, -span, 0.0], np.float32), self._goal_bounds, dtype=np.float32),
        })
        self.goal = np.zeros(2)
        self.steps = 0
        self._ended: bool | None = None  # None: never reset; True: terminated or truncated
        self._distance = 0.0

    # --- helpers ----------------------------------------------------------------------------------------------
    @property
    def sim_time(self) -> float:
        return self.steps * CONTROL_DT

    def _world_now(self):
        world = self.scene.world
        if isinstance(world, DynamicGaussianWorld):
            index = world.index_at(self.sim_time)
            if index != self._keyframe and index < len(self.scene.proxies):
                self.bullet.set_obstacles(self.scene.proxies[index])
                self._keyframe = index
            return world.worlds[index]
        return world

    def _robot_camera(self, K: torch.Tensor, size: tuple[int, int]) -> Camera:
        return Camera(K, torch.from_numpy(self.bullet.camera_world_to_cam()).float(), *size)

    def _render(self, K: torch.Tensor, size: tuple[int, int], lod: float | None = None):
        with torch.no_grad():
            return render(self._world_now(), self._robot_camera(K, size), background=DEFAULT_BACKGROUND, lod=lod)

    def _observation(self) -> dict:
        if self._camera_due():
            self._images = self._camera_images(self._render(self.camera_K, self.image_size, self.camera_lod))
        return {**self._last_images(), **self._robot_observation()}

    def _camera_due(self) -> bool:
        """Whether this observation's camera images are new ones (reset and every ``camera_period``-th step)."""
        return self._images is None or self.steps % self.camera_period == 0

    def _last_images(self) -> dict:
        """Copies of the robot camera's last rgb and depth."""
        return {name: image.copy() for name, image in self._images.items()}

    def _camera_images(self, result) -> dict:
        """The observation's rgb and depth from the robot camera's RenderResult."""
        rgb, depth = result.sensor_images()
        return {"rgb": rgb, "depth": self.depth_observation(depth)}

    def depth_observation(self, metres: np.ndarray) -> np.ndarray:
        """The observation's depth from metres (0 = no surface): clipped to ``max_depth``; as uint8 steps of
        ``max_depth / 255`` metres with ``depth_format="uint8"`` (0 stays "no surface", a surface is at least 1)."""
        metres = np.minimum(np.asarray(metres, np.float32), self.max_depth)
        if self.depth_format == "metres":
            return metres
        steps = np.rint(metres * (255.0 / self.max_depth))
        return np.where(metres > 0, np.maximum(steps, 1), 0).astype(np.uint8)

    def _robot_observation(self) -> dict:
        """The observation's state and goal."""
        x, y, yaw, speed, turn = self.bullet.robot_state()
        offset = self.goal - np.array([x, y])
        local = np.array([math.cos(yaw) * offset[0] + math.sin(yaw) * offset[1],
                          -math.sin(yaw) * offset[0] + math.cos(yaw) * offset[1]])
        state = np.array([x, y, math.cos(yaw), math.sin(yaw), speed, turn], dtype=np.float32)
        goal = np.array([local[0], local[1], np.linalg.norm(offset)], dtype=np.float32)
        return {"state": np.clip(state, -self._state_bounds, self._state_bounds),
                "goal": np.clip(goal, -self._goal_bounds, self._goal_bounds)}

    def _sample_start_and_goal(self) -> tuple[np.ndarray, float, np.ndarray, float | None]:
        """(start xy, yaw, goal xy, the start view's observed share at prepare time or None)."""
        scores = self.scene.view_scores
        if self.start_sampling == "observed" and scores is not None:
            picked = self._sample_observed_start(scores)
            if picked is not None:
                return picked
        return (*self._sample_uniform_start(), None)

    def _goal_near(self, start: np.ndarray, label: int) -> np.ndarray | None:
        """A free cell of ``start``'s region ``label``, ``goal_distance`` away; None when none fits."""
        free = self.scene.free_space
        lo, hi = self.goal_distance
        cells = np.argwhere(free.free)
        centres = free.origin + (cells + 0.5) * free.cell
        distance = np.linalg.norm(centres - start, axis=1)
        ok = np.flatnonzero((free.labels[cells[:, 0], cells[:, 1]] == label) & (distance >= lo) & (distance <= hi))
        return centres[int(self.np_random.choice(ok))] if len(ok) else None

    def _good_views(self, scores) -> np.ndarray:
        """(M, K) bool: the scored views episodes may start from. A view is good when at least ``min_objects`` of
        its pixels show observed objects and at least ``min_observed`` are observed; where fewer than
        MIN_START_VIEWS views are, each bar is lowered to the MIN_START_VIEWS-th best view's share, the object bar
        first (so the starts show the objects as much as the world allows, then are as observed as it allows)."""
        count = min(MIN_START_VIEWS, scores.observed.size)
        objects_bar = min(self.min_objects, np.sort(scores.objects.ravel())[::-1][count - 1])
        showing = scores.objects >= objects_bar
        shares = np.sort(scores.observed[showing])[::-1]
        observed_bar = min(self.min_observed, shares[min(count, len(shares)) - 1])
        return showing & (scores.observed >= observed_bar)

    def _sample_observed_start(self, scores) -> tuple[np.ndarray, float, np.ndarray, float] | None:
        """A good view (``_good_views``), drawn with weight observed share x exp(-distance to the capture camera's
        foot / NEAR_CAPTURE_M); its heading is jittered within its yaw bin. The goal is ``_goal_in_sight``'s (a robot
        driving there looks at observed content), else any free cell at the goal distance."""
        free = self.scene.free_space
        share = scores.observed
        good = self._good_views(scores)
        centres = free.origin + (scores.cells + 0.5) * free.cell
        foot = self.scene.camera_to_world[:2, 3]
        near = np.exp(-np.linalg.norm(centres - foot, axis=1) / (NEAR_CAPTURE_M * self.scene.robot_scale))
        weight = np.where(good, share * near[:, None], 0.0).ravel()
        if weight.sum() <= 0:
            return None
        weight /= weight.sum()
        half_bin = math.pi / len(scores.yaws)
        for _ in range(200):
            m, k = divmod(int(self.np_random.choice(len(weight), p=weight)), len(scores.yaws))
            start = centres[m]
            goal = self._goal_in_sight(start, free.labels[tuple(scores.cells[m])], scores)
            if goal is None:
                goal = self._goal_near(start, free.labels[tuple(scores.cells[m])])
            if goal is None:
                continue
            yaw = float(scores.yaws[k] + self.np_random.uniform(-half_bin, half_bin))
            self.bullet.set_robot_pose(float(start[0]), float(start[1]), yaw)
            if not self.bullet.in_collision(margin=0.01 * self.scene.robot_scale):
                return start, yaw, goal, float(share[m, k])
        return None

    def _goal_in_sight(self, start: np.ndarray, label: int, scores) -> np.ndarray | None:
        """A free cell of region ``label`` ``goal_distance`` from ``start`` and in sight of it over free cells, drawn
        with weight the squared observed share of the view a robot driving there has on arrival (the scored view
        nearest the cell facing the way from the start); None when no cell fits."""
        free = self.scene.free_space
        cells = np.argwhere(free.free & (free.labels == label))
        centres = free.origin + (cells + 0.5) * free.cell
        distance = np.linalg.norm(centres - start, axis=1)
        lo, hi = self.goal_distance
        fits = (distance >= lo) & (distance <= hi)
        fits[fits] = self._in_sight(start, centres[fits])
        if not fits.any():
            return None
        cells, centres = cells[fits], centres[fits]
        nearest = np.argmin(np.abs(cells[:, None, :] - scores.cells[None]).sum(axis=-1), axis=1)
        heading = np.arctan2(centres[:, 1] - start[1], centres[:, 0] - start[0])
        bins = np.rint(heading * len(scores.yaws) / (2 * math.pi)).astype(int) % len(scores.yaws)
        weight = scores.observed[nearest, bins] ** 2
        if weight.sum() <= 0:
            return centres[int(self.np_random.integers(len(centres)))]
        return centres[int(self.np_random.choice(len(centres), p=weight / weight.sum()))]

    def _in_sight(self, start: np.ndarray, targets: np.ndarray) -> np.ndarray:
        """(M,) bool: the straight line from ``start`` to each of ``targets`` (M, 2) runs over free cells only (a
        robot driving it faces the target all the way)."""
        free = self.scene.free_space
        steps = int(np.ceil(np.linalg.norm(targets - start, axis=1).max(initial=0.0) / (free.cell / 2))) + 1
        points = start + np.linspace(0.0, 1.0, steps)[None, :, None] * (targets - start)[:, None, :]
        index = np.floor((points - free.origin) / free.cell).astype(int)
        inside = ((index >= 0) & (index < free.free.shape)).all(axis=-1)
        index = np.where(inside[..., None], index, 0)
        return (inside & free.free[index[..., 0], index[..., 1]]).all(axis=1)

    def _sample_uniform_start(self) -> tuple[np.ndarray, float, np.ndarray]:
        """Any free cell, facing within 90 degrees of the generating camera's heading."""
        free = self.scene.free_space
        cells = np.argwhere(free.free)
        if len(cells) < 2:
            raise RuntimeError("NavigateEnv: the free-space map has fewer than 2 free cells")
        centres = free.origin + (cells + 0.5) * free.cell
        labels = free.labels[cells[:, 0], cells[:, 1]]
        # Face into the generated part of the world (within 90 deg of the generating camera's heading):
        # behind a single-view world there is nothing to see.
        forward = self.scene.camera_to_world[:3, 2]
        heading = math.atan2(forward[1], forward[0])
        for _ in range(200):
            start_index = int(self.np_random.integers(len(cells)))
            start = centres[start_index]
            goal = self._goal_near(start, labels[start_index])
            if goal is None:
                continue
            yaw = heading + float(self.np_random.uniform(-math.pi / 2, math.pi / 2))
            self.bullet.set_robot_pose(float(start[0]), float(start[1]), yaw)
            if not self.bullet.in_collision(margin=0.01 * self.scene.robot_scale):
                return start, yaw, goal
        # No pair at the requested distance: take the farthest reachable goal from a collision-free start.
        start_index = int(self.np_random.integers(len(cells)))
        same = np.flatnonzero(labels == labels[start_index])
        far = same[np.argmax(np.linalg.norm(centres[same] - centres[start_index], axis=1))]
        yaw = heading + float(self.np_random.uniform(-math.pi / 2, math.pi / 2))
        self.bullet.set_robot_pose(*map(float, centres[start_index]), yaw)
        return centres[start_index], yaw, centres[far]

    # --- gymnasium API ----------------------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.steps = 0
        self._images = None
        self._ended = False
        if self._keyframe != 0:
            self.bullet.set_obstacles(self.scene.proxies[0])
            self._keyframe = 0
        _, _, self.goal, share = self._sample_start_and_goal()
        self._distance = float(np.linalg.norm(self.goal - self.bullet.robot_state()[:2]))
        info = {"goal": self.goal.copy(), "distance": self._distance}
        if share is not None:
            info["start_view_observed"] = share
        return self._observation(), info

    def step(self, action):
        """One control step. Non-finite actions raise ActionError (nothing moves): a NaN reaching PyBullet would
        corrupt every later step, and treating it as zero would hide a diverged policy. Stepping an episode
        that has ended (or was never reset) raises gymnasium's ResetNeeded instead of paying more reward."""
        if self._ended is not False:
            raise ResetNeeded("NavigateEnv: call reset() before step()" if self._ended is None else
                              "NavigateEnv: the episode has ended (terminated or truncated); call reset()")
        try:
            action = np.asarray(action, dtype=np.float64).reshape(2)
        except (TypeError, ValueError) as exc:
            raise ActionError(f"action: expected 2 numbers (forward speed, yaw rate), got {action!r}") from exc
        if not np.isfinite(action).all():
            raise ActionError(f"action: {action.tolist()} has non-finite values; the robot was not moved")
        action = np.clip(action, -1.0, 1.0)
        scale = self.scene.robot_scale
        self.bullet.drive(action[0] * self.max_speed * scale, action[1] * self.max_turn, CONTROL_DT)
        self.steps += 1
        state = self.bullet.robot_state()
        distance = float(np.linalg.norm(self.goal - state[:2]))
        reward = PROGRESS_REWARD * (self._distance - distance) - STEP_COST
        self._distance = distance
        collided = self.bullet.in_collision()
        reached = distance < self.goal_radius * scale
        if collided:
            reward -= COLLISION_PENALTY
        if reached:
            reward += GOAL_REWARD
        terminated = bool(collided or reached)
        info = {"collision": collided, "success": reached, "distance": distance, "time": self.sim_time}
        self._ended = terminated
        return self._observation(), float(reward), terminated, False, info  # truncation: TimeLimit's job

    def render(self):
        if self.render_mode != "rgb_array":
            return None
        return self._render(self.render_K, self.render_size).to_uint8().numpy()

    def close(self):
        if getattr(self, "bullet", None) is not None:
            self.bullet.close()
            self.bullet = None
