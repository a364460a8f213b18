"""Hydra finds launchers only under the `hydra_plugins` namespace package: this names lora-repro's submitit
launchers there (`_target_: hydra_plugins.lora_repro_launcher.SlurmLauncher` in conf/hydra/launcher/). The code
is `lora_repro.sweeps.launcher`."""
from lora_repro.sweeps import launcher


class SlurmLauncher(launcher.SlurmLauncher):
    """hydra-submitit-launcher's SLURM launcher that drops finished runs and survives a lost job."""


class LocalLauncher(launcher.LocalLauncher):
    """hydra-submitit-launcher's local launcher, with the same behaviour (tests, one machine)."""
