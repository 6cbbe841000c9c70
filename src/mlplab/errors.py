"""The one exception family mlplab raises for bad input; the CLI prints it as one line."""


class MlplabError(Exception):
    """Bad input or an unmet requirement, with a message that names what and why."""


class DataError(MlplabError):
    """A data file is missing, corrupt, or fails its checksum."""


class SpecError(MlplabError):
    """A model spec or preset name that cannot be built."""


class ConfigError(MlplabError):
    """A configuration field with an invalid value."""


class CheckpointError(MlplabError):
    """A checkpoint that cannot be read or does not describe a model."""


class MlplabWarning(UserWarning):
    """Something the user should know that does not stop the command (the CLI prints it as
    one line)."""
