"""The right view of a world made with back layers as its only completion (shared by the back-layer tests)."""

import numpy as np
import torch

from lyra_sim import Camera, generate_world, render
from lyra_sim.single_view.completion import CompletionOptions

ONLY_BACK_LAYERS = CompletionOptions(floor=False, walls=False, object_backs=False, backdrop=False, seams=False)


def back_layers_view(rgb: np.ndarray, depth: np.ndarray, K: np.ndarray,
                     camera: Camera) -> tuple[np.ndarray, np.ndarray]:
    """Alpha (H, W) and RGB (H, W, 3) at ``camera`` of the world lifted from ``rgb``/``depth`` with back layers
    only, drawn over green."""
    world = generate_world(rgb, depth=depth, intrinsics=K, completion=ONLY_BACK_LAYERS)
    with torch.no_grad():
        out = render(world, camera, background=(0.0, 1.0, 0.0))
    h, w = camera.height, camera.width
    return out.alpha.reshape(h, w).numpy(), out.rgb.reshape(h, w, 3).numpy()
