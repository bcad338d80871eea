"""Many RGB-D frames to one world: odometry and pose graph, TSDF fusion, moving parts as keyframes.

Import the submodules (``lyra_sim.capture.pipeline``): they load open3d and cv2, which ``import lyra_sim`` must not.
"""
