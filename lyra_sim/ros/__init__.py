"""ROS 2 without a ROS install: message fields (``messages.py``, shared with the ``ros2_ws`` node), MCAP bags of
a camera path (``bag.py``) and the bag's options (``options.py``)."""
