"""Defaults several rooms share, in a module that imports nothing heavy (so ``lyra-sim --help`` can show them)."""

from pathlib import Path

DEFAULT_FOV_DEG = 60.0  # horizontal field of view assumed for an image without intrinsics (degrees)
DEFAULT_CAMERA_HEIGHT = 1.2  # metres: a person holding a phone, a robot's mast camera
DEFAULT_MAX_PIXELS = 1920 * 1080  # larger input images are downscaled to this many pixels (one Gaussian each)
PRIOR_PITCH_DEG = 15.0  # the flat prior's camera looks this far down (degrees)
PATH_FRAMES = 48  # frames of a rendered camera path by default (2 s at 24 frames/s)

JSON_CAMERA_FORMAT = (
    'JSON camera file: {"K": 3x3 or a list of 3x3, "world_to_cam": 4x4 or a list of 4x4 (OpenCV: x right, '
    'y down, z forward; maps world points into the camera), "width": W, "height": H} (width/height optional, '
    "default the render size); one camera per world_to_cam entry"
)
RENDER_BACKENDS = ("auto", "cpu", "gsplat")  # lyra_sim.render's backends (gsplat: CUDA only)
COLLIDER_TRIANGLE_BUDGET = 100_000  # most triangles of a collision proxy by default
EXAMPLE_DIR = Path(__file__).resolve().parent / "data"  # the bundled example (pyproject [tool.setuptools.package-data])
DEPTH_MODEL_ENV = "LYRA_SIM_DEPTH_MODEL"  # the configured default depth model (a local folder or a Hugging Face id)
EXAMPLE_DEPTH_MODEL = "depth-anything/Depth-Anything-V2-Metric-Indoor-Small-hf"  # the one the docs and help name
MAX_CAPTURE_FRAMES = 2000  # frames of one RGB-D capture fused by default (odometry and fusion grow with each)
