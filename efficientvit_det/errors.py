"""Every error this package raises on purpose, under one base class.

A tool catches :class:`EfficientVitDetError` and ends with its message in one
line; anything else is a bug and keeps its traceback. Each class also derives
from the builtin it refines, so ``except FileNotFoundError`` and the like keep
working for callers that knew the builtin only.
"""


class EfficientVitDetError(Exception):
    """Base of the errors whose message says what went wrong and how to fix it."""


class _NamedKeyError(EfficientVitDetError, KeyError):
    """A ``KeyError`` whose message prints as written (``KeyError`` quotes it)."""

    def __str__(self):
        return str(self.args[0])


# ----------------------------------------------------------------------------- models

class BackboneArgumentError(_NamedKeyError, ValueError):
    """A backbone built with an unknown variant, an arch dict that does not fit, or
    stage indices it does not have (a ``KeyError`` and a ``ValueError``, as before)."""


# ----------------------------------------------------------------------------- files

class FolderNotOursError(EfficientVitDetError, FileExistsError):
    """A tool was pointed at a folder holding files it did not write there."""


class OutputOverwritesInputError(EfficientVitDetError, FileExistsError):
    """A tool's output would be written over one of its inputs (or another output)."""


class UnreadableImageError(EfficientVitDetError, ValueError):
    """An image file that is missing or that OpenCV cannot decode."""


# ----------------------------------------------------------------------------- checkpoints

class CheckpointMismatchError(EfficientVitDetError, RuntimeError):
    """The checkpoint does not fit the model (wrong variant, wrong family)."""


class CheckpointDownloadError(EfficientVitDetError, RuntimeError):
    """A released checkpoint could not be downloaded (no network, moved file)."""


class UnsafeCheckpointError(EfficientVitDetError, RuntimeError):
    """The checkpoint pickles an object outside the allow-list; it was not run."""


class NonFiniteWeightsError(EfficientVitDetError, ValueError):
    """A checkpoint whose weights hold NaN or inf (a run that diverged)."""


class MissingCheckpointError(EfficientVitDetError, FileNotFoundError):
    """A checkpoint path that does not exist, or names a folder."""


class UnreadableCheckpointError(EfficientVitDetError, ValueError):
    """A checkpoint file torch cannot read: empty, truncated, or another format."""


class UnknownCheckpointError(_NamedKeyError):
    """A ``release:`` / ``hub:`` name that is not one of the known files."""


# ----------------------------------------------------------------------------- OpenMMLab

class ConfigFileError(EfficientVitDetError, ValueError):
    """A config file that is missing, does not parse, or imports a module that is
    not installed (its ``custom_imports``)."""


class PyramidStrideError(EfficientVitDetError, ValueError):
    """The neck does not fit the backbone's widths or feeds a head the wrong strides."""


class SwapRefusedError(EfficientVitDetError, ValueError):
    """swap_backbone cannot fit the new backbone to a model part: names the part and
    what it expects."""


class ConfigOptionError(EfficientVitDetError, ValueError):
    """A config sets an option that no class receiving it accepts."""


class DatasetNotFoundError(EfficientVitDetError, FileNotFoundError):
    """A dataset path the config names does not exist."""


class DatasetError(EfficientVitDetError, ValueError):
    """The annotations are inconsistent (found before any worker starts)."""


class NonFiniteLossError(EfficientVitDetError, FloatingPointError):
    """Training produced a NaN or inf loss (stopped before saving the weights)."""


class WorkDirInUseError(EfficientVitDetError, FileExistsError):
    """The work dir holds another run's checkpoints, which training would overwrite."""


class NothingToResumeError(EfficientVitDetError, FileNotFoundError):
    """``--resume`` without a checkpoint, in a work dir that holds none."""


class RunCompleteError(EfficientVitDetError, ValueError):
    """``--resume`` of a run whose checkpoint already ends its schedule."""


class UnknownModelError(_NamedKeyError):
    """A name that is neither a config file nor a model of the model index."""


class RegistryConflictError(_NamedKeyError):
    """A name we register is taken by a class that is not ours."""


class MissingWeightsError(EfficientVitDetError, ValueError):
    """No checkpoint given, and none released for the model."""


# ----------------------------------------------------------------------------- deployment

class InputTooLargeError(EfficientVitDetError, MemoryError):
    """An input size at which a tensor of the model's would not fit in memory,
    refused before anything of that size is allocated."""


class ExportUnsupported(EfficientVitDetError, NotImplementedError):
    """The model has parts that cannot be written as ONNX, or a detector the
    whole-detector graph does not cover (the message says which)."""


class ExportMismatch(EfficientVitDetError, RuntimeError):
    """An export whose ONNX Runtime outputs differ from PyTorch's (kept aside, not
    written where it was asked for); ``reports`` says which outputs differ."""

    def __init__(self, message: str, reports=()):
        super().__init__(message)
        self.reports = list(reports)


class UnreadableLogError(EfficientVitDetError, ValueError):
    """A log that is not what it was given as: a trtexec log without a finished run's
    performance summary, an mmengine ``scalars.json`` with lines that are not JSON."""


class ResultsFileError(EfficientVitDetError, ValueError):
    """A file given as latency results that is not one (the CSV written beside the
    JSON, a file cut short, another tool's JSON)."""


class ModeUnavailable(EfficientVitDetError, RuntimeError):
    """A way of running a model that this machine cannot offer (reported as skipped)."""
