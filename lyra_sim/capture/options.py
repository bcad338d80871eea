"""Options of the capture generator (an RGB-D folder fused into one world), typed once."""

from __future__ import annotations

import os
from dataclasses import dataclass

from lyra_sim.defaults import MAX_CAPTURE_FRAMES
from lyra_sim.options import option, positive_float, positive_int


@dataclass
class CaptureOptions:
    """How an RGB-D capture folder becomes a world; see ``lyra_sim.capture.pipeline``."""

    poses: str | os.PathLike | None = option(None, "camera-to-world poses: TUM trajectory file or JSON of 4x4 "
                                             "matrices (default: estimated with open3d RGB-D odometry + pose graph)")
    depth_scale: float | None = option(None, "stored depth units per metre (default: the layout's, TUM 5000, "
                                       "plain 1000, or intrinsics.json's depth_scale)", parse=positive_float)
    every: int = option(1, "use every n-th frame", parse=positive_int)
    max_frames: int | None = option(None, "stop after this many frames", parse=positive_int)
    frame_limit: int = option(MAX_CAPTURE_FRAMES, "refuse captures with more frames than this left to fuse (after "
                              "--every / --max-frames)", parse=positive_int)
    voxel_size: float = option(0.02, "fusion voxel (m): one surfel per voxel of surface", parse=positive_float)
    depth_max: float = option(5.0, "depth beyond this many metres is not fused", cli=False)
    sh_degree: int = option(0, "1: fit view-dependent colour from the views; 0: best view's colour", choices=[0, 1])
    dynamic: bool | None = option(None, "None: detect moving parts (a DynamicGaussianWorld when there are any); "
                                  "False: leave them out; True: always dynamic", cli=False)
    keyframe_interval: float = option(0.5, "seconds between moving-part keyframes", parse=positive_float)
