"""Hostile pose messages for the node's soak test and benchmark: no camera can have any of these poses."""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
from geometry_msgs.msg import PoseStamped
from nav_msgs.msg import Odometry


def _set(values: list[float], index, value) -> None:
    values[index] = value


SPOILERS = (  # each makes a unit pose unusable
    lambda v: _set(v, 0, 1e39),  # finite, beyond float32
    lambda v: _set(v, 1, -1e300),
    lambda v: _set(v, 2, math.nan),
    lambda v: _set(v, 0, math.inf),
    lambda v: _set(v, slice(3, 7), [0.0, 0.0, 0.0, 0.0]),  # zero quaternion
    lambda v: _set(v, 3, 2.0),  # not unit length
    lambda v: _set(v, slice(3, 5), [1e200, 1e200]),  # its norm overflows
    lambda v: _set(v, 4, math.nan),
    lambda v: _set(v, slice(3, 7), [1e-320, 0.0, 0.0, 0.0]),  # subnormal
    lambda v: _set(v, 0, 1.0000001e6),  # just beyond parameters.MAX_COORDINATE_M
    lambda v: _set(v, 6, -math.inf),
)


def hostile_poses(count: int, seed: int = 0) -> Iterator[PoseStamped | Odometry]:
    """``count`` PoseStamped and Odometry messages (mixed at random), cycling through SPOILERS."""
    rng = np.random.default_rng(seed)
    for i in range(count):
        values = [*rng.normal(size=3).tolist(), 1.0, 0.0, 0.0, 0.0]
        SPOILERS[i % len(SPOILERS)](values)
        message = PoseStamped() if rng.random() < 0.5 else Odometry()
        pose = message.pose if isinstance(message, PoseStamped) else message.pose.pose
        pose.position.x, pose.position.y, pose.position.z = values[:3]
        pose.orientation.w, pose.orientation.x, pose.orientation.y, pose.orientation.z = values[3:]
        yield message
