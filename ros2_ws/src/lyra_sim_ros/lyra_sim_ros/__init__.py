"""ROS 2 adapter for lyra_sim: the world_camera node (rendered RGB, depth and CameraInfo for received poses)."""
