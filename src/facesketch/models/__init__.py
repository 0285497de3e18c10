"""Networks that are trained: the AttentionGAN and ResNet generators and the PatchGAN discriminator."""

from facesketch.models.discriminators import PatchDiscriminator, build_discriminator
from facesketch.models.generators import AttentionGenerator, GeneratorOutput, ResnetGenerator, build_generator

__all__ = ["AttentionGenerator", "GeneratorOutput", "PatchDiscriminator", "ResnetGenerator", "build_discriminator",
           "build_generator"]
