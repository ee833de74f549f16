"""One exception type for bad input: the CLI prints its message as one line and exits 1."""


class LivestyleError(Exception):
    """A problem with the user's input, named with the file and what is wrong."""

    def __init__(self, path, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


def run_cli(main, argv=None) -> int:
    """Run a stage or command: a LivestyleError becomes one line on stderr and exit 1.

    SIGTERM (what `kill` and a stopped flow send) ends the run as Ctrl-C does, through
    every `finally`, so temporary files are removed instead of left behind.
    """
    import signal
    import sys
    import threading

    in_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _terminated) if in_main else None
    try:
        return main(sys.argv[1:] if argv is None else argv) or 0
    except LivestyleError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        if in_main:
            signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)


def _terminated(signum, frame):
    raise SystemExit(128 + signum)
