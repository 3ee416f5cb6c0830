"""The entry points behind ``tools/*.py``: argument parsing and exit codes over the
library below; nothing here is used by the library."""
