"""Build versioned TorchServe archives (.mar) and the metadata beside them."""

from archiver.build import ArchiveError, BuiltArchive, build_archive, read_metadata

__all__ = ["ArchiveError", "BuiltArchive", "build_archive", "read_metadata"]
