"""The `hf-crossenc` commands: one module each, with `add_parser(subparsers)` and `run(args)`.

The library never imports this package; commands call the library.
"""
