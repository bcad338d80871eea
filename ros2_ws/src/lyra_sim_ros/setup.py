"""ament_python package: the lyra_sim world_camera node, its launch file and config."""

from glob import glob

from setuptools import setup

PACKAGE = "lyra_sim_ros"

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=[PACKAGE],
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.launch.py")),
        (f"share/{PACKAGE}/config", glob("config/*.yaml")),
    ],
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="lyra_sim maintainers",
    maintainer_email="lyra-sim@example.com",
    description="Rendered robot-camera images of lyra_sim Gaussian worlds over ROS 2",
    license="Apache-2.0",
    entry_points={"console_scripts": [f"world_camera = {PACKAGE}.world_camera:main"]},
)
