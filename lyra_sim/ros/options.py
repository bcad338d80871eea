"""Options of ``record_bag`` / ``lyra-sim record-bag``, typed once."""

from __future__ import annotations

from dataclasses import dataclass

from lyra_sim.options import option, positive_float


@dataclass
class BagOptions:
    """The bag's clock, frame ids and topic names; see ``record_bag``."""

    rate_hz: float = option(10.0, "frames per second of bag time", flag="--rate", parse=positive_float)
    frame_id: str = option("camera_optical_frame", "frame_id of the camera messages")
    world_frame_id: str = option("map", "frame_id of the poses")
    topic_prefix: str = option("/camera", "prefix of every topic")
    body_frame_id: str | None = option(
        "camera_link", "camera body frame (x forward, z up) that /tf moves in the world frame; /tf_static fixes the "
        "optical frame to it. '' (None) = /tf moves the optical frame itself, no /tf_static")
