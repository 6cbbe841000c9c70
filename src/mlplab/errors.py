"""The one exception family mlplab raises for bad input; the CLI prints it as one line."""


class MlplabError(Exception):
    """Bad input or an unmet requirement, with a message that names what and why."""


class DataError(MlplabError):
    """A data file is missing, corrupt, or fails its checksum."""


class SpecError(MlplabError):
    """A model spec or preset name that cannot be built."""


class ConfigError(MlplabError):
    """A configuration field with an invalid value.

    `field` names it when the error is about one setting (a TrainConfig field, or one of the
    lab's own), for whoever shows the message next to that setting's input; the message
    starts with the same name: ConfigError("lr: must be positive, got 0", field="lr").
    """

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field


class CheckpointError(MlplabError):
    """A checkpoint that cannot be read or does not describe a model."""


class MlplabWarning(UserWarning):
    """Something the user should know that does not stop the command (the CLI prints it as
    one line)."""
