"""Build versioned TorchServe archives (.mar) and the metadata beside them (`twinserve archive`)."""

from archiver.build import ArchiveError, ArchiveExists, BuiltArchive, build_archive, read_metadata

__all__ = ["ArchiveError", "ArchiveExists", "BuiltArchive", "build_archive", "read_metadata"]
