"""``python -m ncf_lib``: the command-line interface (see :mod:`ncf_lib.cli`)."""

from ncf_lib.cli import main

raise SystemExit(main())
