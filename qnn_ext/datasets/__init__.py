"""Data sets in the shape Keras's ``keras.datasets`` returns them, read from local files only.

    from qnn_ext.datasets import fashion_mnist
    (x_train, y_train), (x_test, y_test) = fashion_mnist.load_data()

Nothing is ever downloaded. Files are looked up, in this order, in:

1. the ``path=`` argument of ``load_data`` (if given, the only place searched);
2. ``$QNN_EXT_DATA/<dataset>/`` then ``$QNN_EXT_DATA/`` (environment variable ``QNN_EXT_DATA``);
3. the Debian package directory ``/usr/share/datasets/<dataset>/``
   (``apt-get install dataset-<dataset>``).

The first directory that holds any of a data set's files is used; if it lacks some of them the
error lists what is missing there rather than mixing files from several places.
"""

import os

__all__ = ["DatasetNotFoundError", "IDXFormatError", "data_dirs", "fashion_mnist", "idx"]

DATA_ENV = "QNN_EXT_DATA"
SYSTEM_DIR = "/usr/share/datasets"


class DatasetNotFoundError(FileNotFoundError):
    """A data set's files are not where they were looked for (the message says where and how to
    obtain them)."""


def data_dirs(dataset, path=None):
    """Directories searched for ``dataset`` (e.g. "fashion-mnist"), in order of precedence."""
    if path is not None:
        return [os.fspath(path)]
    dirs = []
    env = os.environ.get(DATA_ENV)
    if env:
        dirs += [os.path.join(env, dataset), env]
    dirs.append(os.path.join(SYSTEM_DIR, dataset))
    return dirs


def locate_files(dataset, names, path=None, package=None):
    """Map each IDX base name in ``names`` to an existing file, ``<name>.gz`` preferred over
    ``<name>``, all from the same directory (see the module docstring for the search order)."""
    searched = data_dirs(dataset, path)
    for d in searched:
        found, missing = {}, []
        for n in names:
            for candidate in (n + ".gz", n):
                p = os.path.join(d, candidate)
                if os.path.isfile(p):
                    found[n] = p
                    break
            else:
                missing.append(n)
        if not found:
            continue
        if missing:
            raise DatasetNotFoundError(
                "%s: incomplete data in %s: found %s but not %s (each may be gzipped, "
                "<name>.gz, or plain, <name>)"
                % (dataset, d, ", ".join(os.path.basename(found[n]) for n in names if n in found),
                   ", ".join(missing)))
        return found
    how = ("install the Debian package (apt-get install %s) or " % package) if package else ""
    raise DatasetNotFoundError(
        "%s: data files not found; looked for %s (or the same names with .gz) in: %s. "
        "To get the data, %sput the files in a directory and set the environment variable %s "
        "to it%s. Nothing is downloaded."
        % (dataset, ", ".join(names), "; ".join(searched), how, DATA_ENV,
           " (or pass path=)" if path is None else ""))


from .idx import IDXFormatError  # noqa: E402  (after the helpers the submodules import)
from . import fashion_mnist, idx  # noqa: E402
