"""Networks that are trained: the AttentionGAN and ResNet generators and the PatchGAN discriminator."""

from facesketch.models.discriminators import PatchDiscriminator, build_discriminator, build_discriminator_from
from facesketch.models.generators import (
                                          GENERATORS,
                                          AttentionGenerator,
                                          GeneratorOutput,
                                          GeneratorSpec,
                                          ResnetGenerator,
                                          build_generator,  # fmt: skip
                                          build_generator_from,
                                          register_generator,
)

__all__ = ["GENERATORS", "AttentionGenerator", "GeneratorOutput", "GeneratorSpec", "PatchDiscriminator", "ResnetGenerator",
           "build_discriminator", "build_discriminator_from", "build_generator", "build_generator_from", "register_generator"]
