"""A PyBullet scene (DIRECT mode) holding a collision proxy, a floor plane and a differential-drive robot."""

from __future__ import annotations

import contextlib
import math
from pathlib import Path

import numpy as np

from lyra_sim.physics.proxy import CollisionMesh
from lyra_sim.physics.pybullet_quiet import import_pybullet

p = import_pybullet()

ROBOT_URDF = Path(__file__).parent / "assets" / "diff_drive.urdf"
WHEEL_RADIUS = 0.05  # metres at robot_scale 1 (diff_drive.urdf)
WHEEL_BASE = 0.26
ROBOT_RADIUS = 0.18  # footprint circle
ROBOT_HEIGHT = 0.12
WHEEL_FRICTION = 1.2  # lateral friction of the wheels (the caster has none)
WHEEL_MAX_TORQUE = 20.0  # N m per wheel motor at robot_scale 1 (scales with the robot's mass, scale^3)
SPAWN_CLEARANCE = 1e-3  # metres between the wheels and the floor when the robot is placed
GRAVITY = 9.81  # m/s^2, along -z
# OpenCV optical axes (x right, y down, z forward) as columns, in the camera link's axes (x fwd, y left, z up).
OPTICAL_AXES_IN_LINK = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])


def _mesh_shape(client: int, vertices: np.ndarray, faces: np.ndarray) -> int:
    """A static concave triangle-mesh collision shape."""
    return p.createCollisionShape(
        p.GEOM_MESH, vertices=vertices.astype(float).tolist(), indices=faces.reshape(-1).astype(int).tolist(),
        flags=p.GEOM_FORCE_CONCAVE_TRIMESH, physicsClientId=client,
    )  # fmt: skip


class BulletScene:
    """Static proxy (concave trimesh) + floor plane + robot. Units metres, Z up, ``time_step`` seconds."""

    def __init__(self, proxy: CollisionMesh, robot_scale: float = 1.0, time_step: float = 1.0 / 240.0):
        self.client = p.connect(p.DIRECT)
        self.time_step = time_step
        self.robot_scale = robot_scale
        p.setGravity(0, 0, -GRAVITY, physicsClientId=self.client)
        p.setTimeStep(time_step, physicsClientId=self.client)
        self.floor_z = proxy.floor_z if proxy.floor_z is not None else float(proxy.vertices[:, 2].min())
        plane = p.createCollisionShape(p.GEOM_PLANE, physicsClientId=self.client)
        self.floor = p.createMultiBody(0, plane, basePosition=[0, 0, self.floor_z], physicsClientId=self.client)
        self.obstacles: int | None = None
        self.set_obstacles(proxy)
        self.robot: int | None = None
        self._load_robot(0.0, 0.0, 0.0)

    def _load_robot(self, x: float, y: float, yaw: float) -> None:
        """(Re)create the robot at rest. A fresh body carries no solver warm-start or contact cache from a
        previous episode, so the same pose and commands always give the same motion."""
        if self.robot is not None:
            p.removeBody(self.robot, physicsClientId=self.client)
        position = [x, y, self.floor_z + WHEEL_RADIUS * self.robot_scale + SPAWN_CLEARANCE]
        self.robot = p.loadURDF(str(ROBOT_URDF), position, p.getQuaternionFromEuler([0, 0, yaw]),
                                globalScaling=self.robot_scale, physicsClientId=self.client)  # fmt: skip
        joints = {p.getJointInfo(self.robot, j, physicsClientId=self.client)[1].decode(): j
                  for j in range(p.getNumJoints(self.robot, physicsClientId=self.client))}  # fmt: skip
        self.wheels = [joints["left_wheel_joint"], joints["right_wheel_joint"]]
        self.camera_link = joints["camera_joint"]
        p.changeDynamics(self.robot, joints["caster_joint"], lateralFriction=0.0, rollingFriction=0.0,
                         spinningFriction=0.0, physicsClientId=self.client)  # fmt: skip
        for wheel in self.wheels:
            p.changeDynamics(self.robot, wheel, lateralFriction=WHEEL_FRICTION, physicsClientId=self.client)

    # --- scene ------------------------------------------------------------------------------------------------
    def set_obstacles(self, proxy: CollisionMesh) -> None:
        """(Re)load the proxy's obstacle triangles as the static body (dynamic worlds swap it per keyframe)."""
        if self.obstacles is not None:
            p.removeBody(self.obstacles, physicsClientId=self.client)
            self.obstacles = None
        vertices, faces = proxy.obstacle_mesh
        if len(faces):
            shape = _mesh_shape(self.client, vertices, faces)
            self.obstacles = p.createMultiBody(0, shape, physicsClientId=self.client)

    # --- robot ------------------------------------------------------------------------------------------------
    def set_robot_pose(self, x: float, y: float, yaw: float) -> None:
        """Place a fresh robot at rest at (x, y) facing ``yaw`` (radians)."""
        self._load_robot(x, y, yaw)

    def drive(self, linear: float, angular: float, duration: float) -> None:
        """Hold wheel speeds for a forward speed (m/s) and yaw rate (rad/s) during ``duration`` seconds."""
        radius, base = WHEEL_RADIUS * self.robot_scale, WHEEL_BASE * self.robot_scale
        speeds = [(linear - angular * base / 2) / radius, (linear + angular * base / 2) / radius]
        torque = WHEEL_MAX_TORQUE * self.robot_scale**3
        p.setJointMotorControlArray(self.robot, self.wheels, p.VELOCITY_CONTROL, targetVelocities=speeds,
                                    forces=[torque, torque], physicsClientId=self.client)
        for _ in range(max(1, round(duration / self.time_step))):
            p.stepSimulation(physicsClientId=self.client)

    def robot_state(self) -> np.ndarray:
        """x, y, yaw, forward speed, yaw rate."""
        position, orientation = p.getBasePositionAndOrientation(self.robot, physicsClientId=self.client)
        yaw = p.getEulerFromQuaternion(orientation)[2]
        linear, angular = p.getBaseVelocity(self.robot, physicsClientId=self.client)
        forward = linear[0] * math.cos(yaw) + linear[1] * math.sin(yaw)
        return np.array([position[0], position[1], yaw, forward, angular[2]])

    def in_collision(self, margin: float = 0.0) -> bool:
        """Whether the robot touches (or is within ``margin`` of) the obstacle mesh; the floor does not count."""
        if self.obstacles is None:
            return False
        if margin > 0:
            return bool(p.getClosestPoints(self.robot, self.obstacles, margin, physicsClientId=self.client))
        return bool(p.getContactPoints(self.robot, self.obstacles, physicsClientId=self.client))

    def camera_world_to_cam(self) -> np.ndarray:
        """OpenCV world-to-camera (4, 4) of the robot's camera mount."""
        state = p.getLinkState(self.robot, self.camera_link, computeForwardKinematics=True,
                               physicsClientId=self.client)  # fmt: skip
        position, orientation = np.array(state[4]), state[5]
        link_rotation = np.array(p.getMatrixFromQuaternion(orientation)).reshape(3, 3)
        optical = link_rotation @ OPTICAL_AXES_IN_LINK  # columns: optical axes in world coordinates
        world_to_cam = np.eye(4)
        world_to_cam[:3, :3] = optical.T
        world_to_cam[:3, 3] = -optical.T @ position
        return world_to_cam

    def close(self) -> None:
        if self.client is not None and p.isConnected(self.client):
            p.disconnect(self.client)
        self.client = None

    def __del__(self):
        with contextlib.suppress(Exception):  # interpreter shutdown: pybullet may already be gone
            self.close()
