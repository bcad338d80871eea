"""The Lyra model: latent 3DGS decoder (Transformer + Mamba-2), Gaussian head, latent spaces, Cosmos, GEN3C reader."""

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
