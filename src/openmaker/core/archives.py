"""Extracting tar archives the caller does not control (source bundles, model artifacts).

Every member is checked before anything is written: absolute paths, ``..`` and anything
else that would land outside the destination are refused, and so are devices, FIFOs and
(unless allowed) links, with a :class:`ValidationException` naming the member.
"""

from __future__ import annotations

import os
import tarfile
from pathlib import Path

from openmaker.core.errors import ValidationException


def safe_extract(archive: str | os.PathLike, destination: str | os.PathLike, *, what: str,
                 into: str = "the destination directory", allow_links: bool = False) -> None:
    """Extract ``archive`` (any compression tarfile reads) into ``destination``.

    ``what`` names the archive in error messages (``"sagemaker_submit_directory"``),
    ``into`` the destination (``"the code directory"``). With ``allow_links``, symbolic
    and hard links are kept when they point inside ``destination``; otherwise every link
    is refused.
    """
    root = Path(destination).resolve()
    try:
        tar = tarfile.open(archive, "r:*")
    except (tarfile.TarError, OSError) as error:
        raise ValidationException(f"{what}: {archive} is not a readable tar archive "
                                  f"({error})") from None
    with tar:
        for member in tar.getmembers():
            name = member.name
            if os.path.isabs(name) or not (root / name).resolve().is_relative_to(root):
                raise ValidationException(
                    f"{what}: archive member {name!r} would be extracted outside {into}")
            if member.issym() or member.islnk():
                if not allow_links:
                    raise ValidationException(
                        f"{what}: archive member {name!r} is not a regular file or folder "
                        "(links and devices are refused)")
                base = root if member.islnk() else (root / name).parent
                target = member.linkname
                if os.path.isabs(target) or not (base / target).resolve().is_relative_to(root):
                    raise ValidationException(
                        f"{what}: archive member {name!r} is a link to {target!r}, outside "
                        f"{into}")
            elif not (member.isfile() or member.isdir()):
                raise ValidationException(
                    f"{what}: archive member {name!r} is not a regular file or folder "
                    "(links and devices are refused)")
        try:
            tar.extractall(root, filter="data")
        except tarfile.FilterError as error:
            # the data filter re-checks at write time (e.g. a path through a link)
            raise ValidationException(f"{what}: {error}") from None
