"""One way to log: through mmengine's current logger when it is installed (so the
message lands in the run's log), else as a warning for what matters."""
import logging
import warnings


def log_message(message: str, level: int = logging.INFO) -> None:
    try:
        from mmengine.logging import print_log
    except ImportError:
        if level >= logging.WARNING:
            warnings.warn(message)
        return
    print_log(message, logger='current', level=level)
