"""The headless entry point: `bclab train`, `bclab trace summary|tensorboard` and `bclab export`.

`main` is the one error boundary (`bclab.cli.boundary`): a user error is one line on stderr,
`bclab: error: ...`, naming the flag or file, the value and what is expected (exit 2); an
unexpected error is `bclab: internal error: ...` (exit 1), with the traceback under `--debug`.
Modules: `arguments` (flags -> RunConfig), `paths` (output rules), `commands` (pre-flight,
training, the trace commands), `outputs` (strict JSON, signals while writing).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import traceback

from bclab.cli.arguments import EXIT_CODES, build_parser, config_from_args
from bclab.cli.boundary import EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_OK, EXIT_USER_ERROR, UserError, one_line
from bclab.train.quiet import hide_tensorflow_startup_lines

__all__ = ["EXIT_CODES", "build_parser", "config_from_args", "main"]


def main(argv: list[str] | None = None) -> int:
    """Runs `bclab` with `argv` (default: the command line); returns the exit code.

    A bad flag makes the parser exit (`SystemExit(2)`) after its one line, as argparse does.
    """
    hide_tensorflow_startup_lines()  # TensorFlow's C++ start-up lines, unless TF_CPP_MIN_LOG_LEVEL is set
    logging.basicConfig(level=logging.WARNING, format="bclab: %(message)s")
    args = build_parser().parse_args(argv)
    debug = getattr(args, "debug", False)
    try:
        from bclab.cli.commands import export_command, trace_command, train

        return {"train": train, "trace": trace_command, "export": export_command}[args.command](args)
    except UserError as error:
        if debug:
            traceback.print_exc()
        print(f"bclab: error: {error}", file=sys.stderr)
        return EXIT_USER_ERROR
    except BrokenPipeError:  # the reader went away (`bclab trace summary ... | head`): not an error
        with contextlib.suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return EXIT_OK
    except KeyboardInterrupt:
        print("bclab: interrupted; nothing was written", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as error:  # the boundary: one line, never a traceback unless asked
        if debug:
            traceback.print_exc()
        hint = "" if debug else " (run with --debug for the traceback)"
        print(f"bclab: internal error: {type(error).__name__}: {one_line(error)}{hint}", file=sys.stderr)
        return EXIT_INTERNAL
