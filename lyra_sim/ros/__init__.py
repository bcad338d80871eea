"""ROS 2 without a ROS install: message fields (``messages.py``, shared with the ``ros2_ws`` node), MCAP bags of
a camera path (``bag.py``) and the bag's options (``options.py``)."""

from lyra_sim._lazy import lazy_exports

__getattr__, __dir__ = lazy_exports(__name__, {})  # the modules load on first use (``lyra_sim.ros.bag``)
