"""The backends, one folder each with its templates: ``numpy`` (the base module),
``c`` (the NumPy module with its passes compiled to C) and ``cuda`` (CuPy ``RawKernel``s).
``c`` builds on ``numpy``; ``cuda`` on both; ``numpy`` knows neither."""
