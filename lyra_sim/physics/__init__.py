"""Physics: collision proxies from Gaussian worlds (open3d TSDF) and PyBullet scenes with a robot."""

from typing import TYPE_CHECKING

from lyra_sim._lazy import lazy_exports

_EXPORTS = {
    "AgreementReport": "agreement",
    "BulletScene": "bullet",
    "CollisionMesh": "proxy",
    "FloaterReport": "floaters",
    "align_with_proxies": "aligned",
    "build_collision_proxy": "proxy",
    "collider_agreement": "agreement",
    "find_floaters": "floaters",
    "proxy_cameras": "proxy",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

if TYPE_CHECKING:
    from lyra_sim.physics.agreement import AgreementReport, collider_agreement
    from lyra_sim.physics.aligned import align_with_proxies
    from lyra_sim.physics.bullet import BulletScene
    from lyra_sim.physics.floaters import FloaterReport, find_floaters
    from lyra_sim.physics.proxy import CollisionMesh, build_collision_proxy, proxy_cameras

__all__ = [
    "AgreementReport",
    "BulletScene",
    "CollisionMesh",
    "FloaterReport",
    "align_with_proxies",
    "build_collision_proxy",
    "collider_agreement",
    "find_floaters",
    "proxy_cameras",
]
