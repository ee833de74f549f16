"""One exception type for bad input: the CLI prints its message as one line and exits 1."""


class LivestyleError(Exception):
    """A problem with the user's input, named with the file and what is wrong."""

    def __init__(self, path, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


def run_cli(main, argv=None) -> int:
    """Run a stage or command: a LivestyleError becomes one line on stderr and exit 1."""
    import sys

    try:
        return main(sys.argv[1:] if argv is None else argv) or 0
    except LivestyleError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
