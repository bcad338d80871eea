"""The Lyra model: latent 3DGS decoder (Transformer + Mamba-2), Gaussian head, latent spaces, Cosmos, GEN3C reader."""

from typing import TYPE_CHECKING

from lyra_sim._lazy import lazy_exports

_EXPORTS = {
    "CheckpointError": "decoder",
    "CosmosTokenizer": "cosmos",
    "LyraDecoder": "decoder",
    "LyraDecoderConfig": "decoder",
    "TeacherDataError": "gen3c_dir",
    "TokenizerError": "cosmos",
    "decode_teacher_dir": "pipeline",
    "load_teacher_latent": "gen3c_dir",
    "read_teacher_dir": "gen3c_dir",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

if TYPE_CHECKING:
    from lyra_sim.lyra.cosmos import CosmosTokenizer, TokenizerError
    from lyra_sim.lyra.decoder import CheckpointError, LyraDecoder, LyraDecoderConfig
    from lyra_sim.lyra.gen3c_dir import TeacherDataError, load_teacher_latent, read_teacher_dir
    from lyra_sim.lyra.pipeline import decode_teacher_dir

__all__ = [
    "CheckpointError",
    "CosmosTokenizer",
    "LyraDecoder",
    "LyraDecoderConfig",
    "TeacherDataError",
    "TokenizerError",
    "decode_teacher_dir",
    "load_teacher_latent",
    "read_teacher_dir",
]
