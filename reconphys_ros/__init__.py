"""reconphys_ros: video of a falling deformable object -> simulation-ready 3D Gaussians + spring-mass physics.

The package spans two directories: these sources and the rosidl-generated messages (`reconphys_ros.msg`), which
the message build installs next to the ROS wheels. extend_path joins them into one package.
"""
from pkgutil import extend_path

__path__ = extend_path(__path__, __name__)
__version__ = "0.1.0"
