"""The test session embeds PatternNet next to JAX the way a user's program does: it
applies PatternNet's XLA:CPU configuration before any test module starts JAX
(patternnet/xla_cpu.py), so the suite runs what users run."""

import patternnet

patternnet.configure_xla_cpu()
