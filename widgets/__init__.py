"""The Qt desktop app of Layer Studio (PySide6). The core in ``studio`` never imports this."""

from widgets._pyside_fix import protect_none

protect_none()
