"""What to do about an output file that could not be written, by the reason the OS gave: a
full disk, a permission, a read-only mount, a file in the way, a folder that cannot exist.
"""

from __future__ import annotations

import errno
import os

# What to do about a failed write, by its errno. The events carry the reason as the OS wrote
# it (strerror), which is os.strerror(errno): the table is keyed by that text.
_WRITE_ADVICE = {
    os.strerror(number): advice
    for numbers, advice in (
        (
            (errno.ENOSPC, errno.EDQUOT),
            "Free some space on the output folder's disk (or raise the quota)",
        ),
        (
            (errno.EACCES, errno.EPERM),
            "Let the user running aggregator write to the output folder (check the "
            "permissions of it and of its parent folders)",
        ),
        (
            (errno.EROFS,),
            "The output folder is on a read-only file system: remount it writable, or set "
            "output (or --output) to a folder on a writable one",
        ),
        (
            (errno.ENOTDIR, errno.EEXIST),
            "A file stands where the output path needs a folder: move it away, or set output "
            "(or --output) to another folder",
        ),
        (
            (errno.ENOENT,),
            "The output folder cannot be created there (a parent is missing or cannot hold "
            "folders, as in /proc): set output (or --output) to a folder that can exist",
        ),
        (
            (errno.EISDIR,),
            "A folder stands where an output file goes: move it away",
        ),
        (
            (errno.ENAMETOOLONG,),
            "The path is too long for the file system: set output (or --output) to a shorter one",
        ),
    )
    for number in numbers
}


def write_advice(reason: str) -> str:
    """What to do about an output file that could not be written for `reason`."""
    return _WRITE_ADVICE.get(
        reason, "Check that the output folder is a folder this user can write to"
    )
