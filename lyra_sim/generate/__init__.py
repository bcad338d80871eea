"""World generation: the Lyra latent 3DGS decoder and its inputs, and the embedded RGB-D lift (weightless, CPU)."""

from lyra_sim.generate.api import generate_world
from lyra_sim.generate.completion import CompletionOptions, tint_completed
from lyra_sim.generate.cosmos import CosmosTokenizer, TokenizerError
from lyra_sim.generate.depth_sources import DEPTH_MODEL_ENV, estimate_depth, ground_backdrop_prior
from lyra_sim.generate.gen3c_dir import TeacherDataError, load_teacher_latent, read_teacher_dir
from lyra_sim.generate.images import InputError, load_depth, load_intrinsics, load_rgb
from lyra_sim.generate.lift import lift_rgbd
from lyra_sim.generate.lyra_decoder import CheckpointError, LyraDecoder, LyraDecoderConfig
from lyra_sim.generate.lyra_pipeline import decode_teacher_dir
from lyra_sim.generate.sequence import RGBDSequence, read_sequence

__all__ = [
    "DEPTH_MODEL_ENV",
    "CheckpointError",
    "CompletionOptions",
    "CosmosTokenizer",
    "InputError",
    "LyraDecoder",
    "LyraDecoderConfig",
    "RGBDSequence",
    "TeacherDataError",
    "TokenizerError",
    "decode_teacher_dir",
    "estimate_depth",
    "generate_world",
    "ground_backdrop_prior",
    "lift_rgbd",
    "load_depth",
    "load_intrinsics",
    "load_rgb",
    "load_teacher_latent",
    "read_sequence",
    "read_teacher_dir",
    "tint_completed",
]
