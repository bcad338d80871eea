"""Options of a rendered camera path (``world_camera_path``) and of ``render_path``, typed once; ``lyra-sim
render`` and ``record-bag`` build their flags from them."""

from __future__ import annotations

from dataclasses import dataclass

from lyra_sim.defaults import PATH_FRAMES, RENDER_BACKENDS
from lyra_sim.options import option, positive_float, positive_int

_SIZE_HELP = "image {} in pixels (default: the generating image's, else 320x240; one side given keeps its aspect)"


@dataclass
class CameraPathOptions:
    """How many cameras a path has, their image size and field of view; see ``world_camera_path``."""

    frames: int = option(PATH_FRAMES, "frames per camera path", parse=positive_int)
    width: int | None = option(None, _SIZE_HELP.format("width"), parse=positive_int)
    height: int | None = option(None, _SIZE_HELP.format("height"), parse=positive_int)
    fov: float | None = option(None, "horizontal FOV in degrees (default: the generating camera's)",
                               parse=positive_float)


@dataclass
class RenderOptions:
    """How ``render_path`` draws a path's frames and which files it writes besides them."""

    backend: str = option("auto", "rasterizer: gsplat needs CUDA; auto picks it when the world is on a GPU",
                          choices=list(RENDER_BACKENDS))
    depth_frames: bool = option(False, "also write depth previews", flag="--depth")
    lod: float | None = option(None, "CPU level of detail: draw far, dense parts as merged Gaussians of at most "
                               "this many pixels (standard deviation); default: every Gaussian", parse=positive_float)
    mp4: bool = option(True, "skip the MP4", flag="--no-mp4")
    fps: int = option(24, "frames per second of the MP4", parse=positive_int)
