"""world_camera entry point: ``ros2 run lyra_sim_ros world_camera`` or ``python -m lyra_sim_ros.world_camera``.

The node (lyra_sim_ros.camera_node) imports torch and lyra_sim, which takes seconds: a Ctrl-C during that
import ends the program quietly too. Exit codes: 0 after Ctrl-C / SIGTERM, 2 for a bad parameter or world.
"""

from __future__ import annotations

import sys


def main(args: list[str] | None = None) -> None:
    try:
        from lyra_sim_ros.camera_node import run
    except KeyboardInterrupt:  # exit 0, as after a Ctrl-C while spinning
        return
    code = run(args)
    if code:
        sys.exit(code)


if __name__ == "__main__":
    main()
