"""Error types that name the file and the problem."""


class GbdistError(Exception):
    """Base class for errors a user can act on (bad input, bad store, bad config)."""


class StructureError(GbdistError):
    """A structure file that cannot be read or has no grain boundary to select.

    The message always starts with the file name: ``"ni.p158.out.xz: <problem>"``.
    """

    def __init__(self, source: str, problem: str):
        self.source = source
        self.problem = problem
        super().__init__(f"{source}: {problem}")


class StoreError(GbdistError):
    """A store that is missing, unwritable, of another schema, or built from other inputs."""
