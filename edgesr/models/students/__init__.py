"""The student families, one file each: importing this package registers all of them
(:func:`edgesr.models.registry.register_student`), so a new family is a new file here."""

import importlib
import pkgutil

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
